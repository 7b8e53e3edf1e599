"""The generator of signalish's test vectors (``vectors/``).

Not part of the installed package: it runs from a checkout of the
repository, ``python -m vectorgen [--check] [--dir DIR]``.  It holds a
pure-Python FIPS 203 ML-KEM encapsulation that takes its randomness as an
argument, so that PQXDH vectors are reproducible; that code is neither
constant-time nor used for any real message, which is why it stays out of
the library.  ``python -m signalish vectors verify`` (in the package)
checks signalish against the vectors without it.
"""
