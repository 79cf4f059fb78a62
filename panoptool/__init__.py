"""panoptool: panoptic segmentation from instance contours on Cityscapes-format data."""

__version__ = "0.1.0"

#: Version of the file formats written between panoptool's own stages (targets, maps).
FORMAT_VERSION = 1
