"""OCPI 2.2.1 objects: typed models, file import with pseudonymisation at the edge, normalisation into events."""
