"""TFDS builders: the paper's protocols written once to ``array_record`` files.

Each builder reads the files the user downloaded from TFDS's ``manual_dir``
(``<data_dir>/downloads/manual`` unless told otherwise), applies the protocol of
:mod:`lkca_jax.data.protocols` with the dataset's fields from
:data:`lkca_jax.config.DATASETS`, and writes one example per training patch or
test image: ``hr`` and ``lr`` (float32, H x W x C, normalised), ``id`` (scene and
window), ``scale`` and ``norm`` (the constant the scene was divided by, so
evaluation and inference can undo it). There is a builder config per scale,
``x2``, ``x3``, ``x4`` and ``x8``. Reading needs no TensorFlow::

    import tensorflow_datasets as tfds
    import lkca_jax.data.tfds  # registers the builders
    builder = tfds.builder("pavia_centre/x4", data_dir="~/tensorflow_datasets", file_format="array_record")
    builder.download_and_prepare()
    train = builder.as_data_source(split="train")  # random access; feed to lkca_jax.data.pipeline

Builders: ``chikusei``, ``houston2018``, ``pavia_centre``, ``cave`` and
``hsi_folder`` (any folder of cubes, split by scene).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from lkca_jax.config import DATASETS, base_config
from lkca_jax.data import protocols as P
from lkca_jax.data.datasets import scene_windows
from lkca_jax.data.io import DataError

SCALES = (2, 3, 4, 8)


@dataclasses.dataclass(eq=False)
class ScaleConfig(tfds.core.BuilderConfig):
    scale: int = 4


class _ProtocolBuilder:
    """What the builders share; each subclass names its protocol, files and sources."""

    PROTOCOL = ""  # a key of lkca_jax.config.DATASETS, or 'folder'
    FILES: tuple[str, ...] = ()  # the expected file name(s) in manual_dir; () = the folder itself
    KEY = ""  # the variable inside the file
    DESCRIPTION = ""
    HOMEPAGE = ""
    CITATION = ""
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "The paper's protocol (RECONSTRUCTION.md section 5)."}
    BUILDER_CONFIGS = [ScaleConfig(name=f"x{r}", description=f"x{r} super-resolution pairs", scale=r)
                       for r in SCALES]
    DEFAULT_CONFIG_NAME = "x4"

    def _info(self):
        bands = DATASETS.get(self.PROTOCOL, {}).get("bands")
        image = tfds.features.Tensor(shape=(None, None, bands), dtype=np.float32, encoding="bytes")
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "hr": image, "lr": image, "id": tfds.features.Text(), "scale": np.int32, "norm": np.float32}),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
        )

    def _source(self, manual_dir: pathlib.Path) -> pathlib.Path:
        if not self.FILES:
            return manual_dir
        for name in self.FILES:
            if (manual_dir / name).exists():
                return manual_dir / name
        raise DataError(manual_dir, f"expected {' or '.join(self.FILES)} here; see the manual download instructions")

    def _config(self, manual_dir: pathlib.Path):
        # The folder protocol learns its band count from the data; the window code does not use it.
        c = base_config(self.PROTOCOL, f"x{self.builder_config.scale}", bands=None if self.PROTOCOL in DATASETS else 1)
        c.data.path = str(self._source(pathlib.Path(manual_dir)))
        c.data.key = self.KEY
        return c

    def _split_generators(self, dl_manager):
        config = self._config(dl_manager.manual_dir)
        cubes, norms, splits = scene_windows(config, check_bands=self.PROTOCOL in DATASETS)
        return {name: self._generate_examples(cubes, norms, ws) for name, ws in splits.items() if ws}

    def _generate_examples(self, cubes, norms, ws):
        scale = self.builder_config.scale
        for w in ws:
            hr = P.crop(cubes[w.scene], w)
            yield w.id, {"hr": hr, "lr": P.degrade(hr, scale), "id": w.id, "scale": scale, "norm": norms[w.scene]}


class Chikusei(_ProtocolBuilder, tfds.core.GeneratorBasedBuilder):
    """Chikusei, Headwall Hyperspec-VNIR-C, 128 bands, the SSPSR protocol."""

    PROTOCOL = "chikusei"
    FILES = ("HyperspecVNIR_Chikusei_20140729.mat",)
    KEY = "chikusei"
    DESCRIPTION = ("Chikusei airborne hyperspectral scene (2517 x 2335 x 128, 363-1018 nm), cropped to 2304 x 2048 "
                   "and divided by its max; 4 test images of 512 x 512 from the top, patches from the rows below.")
    HOMEPAGE = "https://naotoyokoya.com/Download.html"
    CITATION = ("N. Yokoya and A. Iwasaki, Airborne hyperspectral data over Chikusei, Univ. of Tokyo, "
                "Tech. Rep. SAL-2016-05-27, 2016.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download 'Hyperspectral data (MAT format)' (HyperspecVNIR_Chikusei_20140729_MAT.zip) from "
        "https://naotoyokoya.com/Download.html, unzip it and put HyperspecVNIR_Chikusei_20140729.mat "
        "(MATLAB v7.3, variable 'chikusei') directly in manual_dir.")


class Houston2018(_ProtocolBuilder, tfds.core.GeneratorBasedBuilder):
    """Houston 2018 (GRSS Data Fusion Contest), ITRES CASI 1500, 48 bands."""

    PROTOCOL = "houston"
    FILES = ("houston2018.mat", "20170218_UH_CASI_S4_NAD83.hdr", "houston2018.tif", "houston2018.npy")
    DESCRIPTION = ("Houston 2018 hyperspectral scene (48 bands, 380-1050 nm), divided by its max; 8 test images of "
                   "256 x 256 from the top, patches from the rows below.")
    HOMEPAGE = "https://hyperspectral.ee.uh.edu/?page_id=1075"
    CITATION = ("Y. Xu et al., Advanced multi-sensor optical remote sensing for urban land use and land cover "
                "classification: outcome of the 2018 IEEE GRSS Data Fusion Contest, IEEE JSTARS 12(6), 2019.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Request the 2018 IEEE GRSS Data Fusion Contest data (https://hyperspectral.ee.uh.edu/?page_id=1075 or "
        "IEEE DataPort), and put in manual_dir either the ENVI pair 20170218_UH_CASI_S4_NAD83.hdr + "
        "20170218_UH_CASI_S4_NAD83.pix from FullHSIDataset, or the 48-band cube saved as houston2018.mat "
        "(its only 3-D variable), houston2018.tif or houston2018.npy.")


class PaviaCentre(_ProtocolBuilder, tfds.core.GeneratorBasedBuilder):
    """Pavia Centre, ROSIS, 102 bands."""

    PROTOCOL = "pavia"
    FILES = ("Pavia.mat",)
    KEY = "pavia"
    DESCRIPTION = ("Pavia Centre (ROSIS, 1096 x 715 x 102), divided by 8000; 3 test images of 224 x 224 from the "
                   "top (the rightmost remainder discarded), patches from the rows below.")
    HOMEPAGE = "https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes"
    CITATION = "ROSIS Pavia Centre scene, courtesy of P. Gamba, University of Pavia."
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download Pavia.mat (Pavia Centre, variable 'pavia') from "
        "https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes and put it in manual_dir.")


class Cave(_ProtocolBuilder, tfds.core.GeneratorBasedBuilder):
    """CAVE multispectral, 31 bands, 512 x 512 scenes split by scene."""

    PROTOCOL = "cave"
    DESCRIPTION = ("CAVE multispectral images (31 bands, 400-700 nm, 16-bit PNG per band), divided by 65535; "
                   "scenes split as lkca_jax.config.CAVE_SCENES, patches from the training scenes, the others whole.")
    HOMEPAGE = "https://cave.cs.columbia.edu/repository/Multispectral"
    CITATION = ("F. Yasuma, T. Mitsunaga, D. Iso and S. K. Nayar, Generalized assorted pixel camera: postcapture "
                "control of resolution, dynamic range, and spectrum, IEEE TIP 19(9), 2010.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download complete_ms_data.zip from https://cave.cs.columbia.edu/repository/Multispectral and unzip it so "
        "that manual_dir holds one <scene>_ms folder per scene (e.g. balloons_ms/), each holding its 31 band "
        "PNGs (a nested <scene>_ms/<scene>_ms/ level, as in the official zip, is fine).")


class HsiFolder(_ProtocolBuilder, tfds.core.GeneratorBasedBuilder):
    """Any folder of hyperspectral cubes (one scene per file or band-PNG folder), split by scene."""

    PROTOCOL = "folder"
    DESCRIPTION = ("A folder of cubes in any format lkca_jax reads, each divided by the global max; a seeded "
                   "shuffle of the scene names puts 20% of the scenes in test and 10% in validation.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the cubes (.mat, .npy, .npz, .tif, ENVI .hdr + data, or folders of band PNGs), all with the same "
        "number of bands, directly in manual_dir.")
