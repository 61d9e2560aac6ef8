//! End-to-end tests of whole nodes: servers started by the tests on ports chosen at run time.
