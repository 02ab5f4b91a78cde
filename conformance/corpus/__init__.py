"""Corpora of other projects' BPF test programs, read at run time (never committed), and our recordings of
what the host kernel does with them. See :mod:`conformance.corpus.verifier`."""
