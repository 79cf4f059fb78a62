"""Command line of panoptool: a thin click layer over the library."""
