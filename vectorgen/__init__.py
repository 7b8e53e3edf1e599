"""The generator of signalish's test vectors (``vectors/``).

Not part of the installed package: it runs from a checkout of the
repository, ``python -m vectorgen [--check] [--dir DIR]``.  It holds a
pure-Python FIPS 203 ML-KEM encapsulation, and the round-3 Kyber1024
encapsulation of libsignal_v4 built on it, that take their randomness as an
argument, so that PQXDH vectors are reproducible; that code is neither
constant-time nor used for any real message, which is why it stays out of
the library.  ``python -m signalish vectors verify`` (in the package)
checks signalish against the vectors without it.
"""
