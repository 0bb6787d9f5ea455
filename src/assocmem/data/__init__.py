"""Data sets: the IDX format (MNIST, Fashion-MNIST) with checksums, downloads and user-named folders."""
