"""The framing on the VM's virtio-serial port: many byte streams, and fd handles, over one port.

A frame is ``struct FRAME`` (channel u32, data length u32, handle count u16), then that many
u32 handles, then the data. Channel 0 carries control messages, one pickled object per
frame. Every other channel is the byte stream of one guest task's RPC socket, which carries
the host child protocol of :mod:`bpfemu.host.rpc` unchanged. Fds cannot cross the port, so the
guest agent keeps the fds a task sends (SCM_RIGHTS) in a table and the frame carries their
handles; a frame with handles sent to the guest is delivered to the task with the fds those
handles stand for.
"""
import struct

FRAME = struct.Struct("<IIH")
CONTROL = 0
PORT_NAME = "bpfemu.rpc"  # the virtserialport's name; the guest finds /dev/vportNpM by it
TASK_PORT_PREFIX = "bpfemu.task."  # ports a spawned task talks to the host on directly, one task each
MOUNT_TAG = "bpfemu-root"  # the 9p share of the host's root


def encode(chan, data, handles=()):
    return FRAME.pack(chan, len(data), len(handles)) + struct.pack("<%dI" % len(handles), *handles) + data


class Reader:
    """Frames out of a byte stream fed with ``feed``; ``frames()`` yields (chan, data, handles)."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, chunk):
        self.buf += chunk

    def frames(self):
        while len(self.buf) >= FRAME.size:
            chan, n, nh = FRAME.unpack_from(self.buf)
            end = FRAME.size + 4 * nh + n
            if len(self.buf) < end:
                return
            handles = list(struct.unpack_from("<%dI" % nh, self.buf, FRAME.size))
            data = bytes(self.buf[FRAME.size + 4 * nh:end])
            del self.buf[:end]
            yield chan, data, handles
