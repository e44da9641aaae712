//! HDF5 source and sink tests.
