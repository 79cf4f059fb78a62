"""Settings of the post-processing stage."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from panoptool.errors import ConfigError

#: The ways instances are derived from the maps (:attr:`PostprocessConfig.derivation`).
DERIVATIONS = ("paper", "seeded")


@dataclass(frozen=True)
class PostprocessConfig:
    """How instances and panoptic segments are derived from prediction maps.

    Parameters
    ----------
    contour_threshold : pixels whose contour probability is above this value are contour
        pixels; they separate instances. In [0, 1).
    connectivity : 4 or 8, neighbourhood of the connected components of thing pixels.
    split : split an instance whose predicted centres form several clusters.
    merge : join same-class instances whose mean predicted centres are closer than ``eps``.
    min_area : instances with fewer pixels are removed and their pixels given to the
        same-class instance whose centre is nearest the pixel's predicted centre, if that
        centre is closer than ``eps``; other pixels become void (0 = off).
    eps : clustering radius in pixels, for split (DBSCAN's eps) and merge.
    min_samples : DBSCAN's ``min_samples`` in pixels: a cluster needs a centre cell with at
        least this many predicted centres within ``eps``.
    cell : side in pixels of the grid on which predicted centres are clustered (votes are
        counted per cell, then the weighted cells are clustered). Smaller is closer to
        per-pixel DBSCAN and slower; must be at most ``eps``.
    fill_contours : give contour pixels of a thing class back to the nearest instance of
        their class (geodesic, through contour pixels); off leaves them void.
    derivation : ``"paper"``: the paper's derivation (components, split, merge, min-area,
        then the contour pixels are filled back). ``"seeded"``: the components are first
        grown over the contour band, each band pixel joining the same-class instance that
        reaches it with the mean centre nearest its predicted centre (within ``eps``), and
        the band pixels that no instance takes (objects lying wholly inside the band, which
        the paper's derivation loses) become instances of their own; split, merge,
        min-area and fill-back then run as in the paper's derivation on the grown
        instances. See :func:`~panoptool.postprocess.kernels.grow_seeds`.
    band_eps : with ``derivation="seeded"``: a band pixel joins an instance only if its
        predicted centre lies within this many pixels of the instance's mean centre; band
        pixels that point farther, to a common centre of their own, become an instance.
        ``None``: ``eps``; ``0``: no limit (only band regions that no instance reaches
        become instances; better where the offsets in the band are poor).
    """

    # metadata["help"]: the command-line help of the option made from the field
    # (panoptool_cli.options.field_option), shared by postprocess and predict
    contour_threshold: float = field(default=0.5, metadata={
        "help": "Pixels with contour probability above this separate instances."})
    connectivity: int = field(default=4, metadata={
        "help": "Neighbourhood of the connected components."})
    split: bool = field(default=True, metadata={
        "help": "Split instances whose predicted centres form several clusters."})
    merge: bool = field(default=True, metadata={
        "help": "Join same-class instances whose mean predicted centres are closer than --eps."})
    min_area: int = field(default=300, metadata={
        "help": "Remove instances smaller than this (pixels); their pixels go to the same-class "
                "instance whose centre their offsets point to (within --eps), else become "
                "void; 0 = off."})
    eps: float = field(default=20.0, metadata={
        "help": "Clustering radius in pixels (split and merge)."})
    min_samples: int = field(default=100, metadata={
        "help": "DBSCAN min_samples (pixels) for the split."})
    cell: float = field(default=4.0, metadata={
        "help": "Grid cell (pixels) on which predicted centres are clustered."})
    fill_contours: bool = field(default=True, metadata={
        "help": "Give contour pixels back to the nearest instance of their class."})
    derivation: str = field(default="paper", metadata={
        "help": "How instances are derived. paper: connected components of the thing mask "
                "minus the contours, then split / merge / min-area, then contour pixels filled "
                "back (an object lying wholly inside the contour band is lost). seeded: the "
                "components are first grown over the contour band (each band pixel joins the "
                "same-class instance whose mean centre is nearest its predicted centre, within "
                "--eps) and band pixels that no instance takes become instances of their own, "
                "so no thing region is lost; split / merge / min-area / fill-back then run as "
                "in paper."})
    band_eps: float | None = field(default=None, metadata={
        "help": "With --derivation seeded: a contour-band pixel joins an instance only if its "
                "predicted centre is within this many pixels of the instance's mean centre; "
                "band pixels pointing farther, to a centre of their own (at least "
                "--min-samples of them), become an instance; 0 = no limit: only band regions "
                "that no instance reaches become instances. Default: 0 on a network's maps "
                "(its offsets in the band are too rough for the limit: it made more false "
                "instances than it recovered, see README), --eps with --oracle."})

    def __post_init__(self):
        if not 0.0 <= self.contour_threshold < 1.0:
            raise ConfigError(f"contour_threshold must lie in [0, 1), got "
                              f"{self.contour_threshold}")
        if self.connectivity not in (4, 8):
            raise ConfigError(f"connectivity must be 4 or 8, got {self.connectivity}")
        if self.min_area < 0:
            raise ConfigError(f"min_area must be >= 0, got {self.min_area}")
        if not self.eps > 0:
            raise ConfigError(f"eps must be > 0 pixels, got {self.eps}")
        if self.min_samples < 1:
            raise ConfigError(f"min_samples must be >= 1, got {self.min_samples}")
        if not 0 < self.cell <= self.eps:
            raise ConfigError(f"cell must lie in (0, eps={self.eps}], got {self.cell}")
        if self.derivation not in DERIVATIONS:
            raise ConfigError(f"derivation must be one of {', '.join(DERIVATIONS)}, got "
                              f"{self.derivation!r}")
        if self.band_eps is not None and not self.band_eps >= 0:
            raise ConfigError(f"band_eps must be >= 0 pixels (0 = no limit), got "
                              f"{self.band_eps}")
        for name in ("split", "merge", "fill_contours"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        """The settings as a JSON-ready dict (keys in field order)."""
        return dataclasses.asdict(self)

    def on_maps(self) -> "PostprocessConfig":
        """These settings for a network's maps: an unset ``band_eps`` (None) becomes 0, no
        band limit, with the seeded derivation (a network's offsets in the contour band are
        too rough for the limit); on ground truth (``--oracle``) it stays None, i.e.
        ``eps``. The one place of this rule (postprocess, predict, ablate use it).

        >>> PostprocessConfig(derivation="seeded").on_maps().band_eps
        0.0
        >>> PostprocessConfig().on_maps().band_eps is None
        True
        """
        if self.band_eps is None and self.derivation == "seeded":
            return dataclasses.replace(self, band_eps=0.0)
        return self

    @property
    def band_limit(self) -> float:
        """The seeded growth's centre radius in pixels (``inf``: no limit)."""
        radius = self.eps if self.band_eps is None else self.band_eps
        return float(radius) if radius > 0 else float("inf")

    @property
    def steps(self) -> list[str]:
        """Names of the refinement steps that are on, in the order they run."""
        grow = [("grow", self.derivation == "seeded")]
        return [name for name, on in (*grow, ("split", self.split), ("merge", self.merge),
                                      ("min_area", self.min_area > 0),
                                      ("fill_contours", self.fill_contours)) if on]


#: Image size the derivation's pixel defaults (and the paper's min-area values 1, 100, 300,
#: 500 px) refer to: Cityscapes' 1024x2048.
CITYSCAPES_PIXELS = 1024 * 2048


def scale_area(area: int, scale: float) -> int:
    """A min-area in Cityscapes pixels -> pixels of an image ``scale`` times as large in area
    (0 stays 0 = off; anything else at least 1).

    >>> scale_area(300, 256 * 512 / (1024 * 2048)), scale_area(1, 0.0625), scale_area(0, 0.5)
    (19, 1, 0)
    """
    return 0 if area == 0 else max(1, round(area * scale))


def scaled_config(config: PostprocessConfig, pixels: int) -> PostprocessConfig:
    """The derivation's pixel sizes, given for a 1024x2048 image, for an image of ``pixels``
    pixels: ``min_area`` and ``min_samples`` (areas) times the area ratio, ``eps`` and
    ``cell`` (lengths) times its square root (``cell`` at least 0.25 and at most ``eps``).

    >>> c = scaled_config(PostprocessConfig(), 256 * 512)
    >>> c.min_area, c.eps, c.min_samples, c.cell
    (19, 5.0, 6, 1.0)
    """
    scale = pixels / CITYSCAPES_PIXELS
    length = math.sqrt(scale)
    eps = round(config.eps * length, 3)
    cell = min(eps, max(0.25, round(config.cell * length, 3)))
    return dataclasses.replace(config, min_area=scale_area(config.min_area, scale), eps=eps,
                               min_samples=max(1, round(config.min_samples * scale)),
                               cell=cell)
