"""The datasets this library knows: one registry entry each (RECONSTRUCTION.md section 5).

An entry holds every fact about a dataset that code needs: its band count, the files a user
downloads and the variable inside them, its layout (how scenes become splits), the crop, the
normalisation, the test images, the scene lists, and what the TFDS builder says about it
(description, home page, citation, download instructions). ``configs/<name>.py`` (through
:func:`lkca_jax.config.base_config`), the split code in :mod:`lkca_jax.data.datasets` and the
TFDS builders in :mod:`lkca_jax.data.tfds` all read it; ``config.data.protocol`` names the entry.

Layouts:

* ``strip``: one scene; ``n_test`` test images of ``test_size`` side by side along the top
  (``n_test = 0``: as many as fit), training patches from the rows below (Chikusei, Houston 2018,
  Pavia Centre, the embedded sample);
* ``scenes``: a folder of scenes named per split (CAVE);
* ``folder``: a folder of any scenes, split by a seeded shuffle of their names.
"""

from __future__ import annotations

import dataclasses

LAYOUTS = ("strip", "scenes", "folder")

# choice: the 16 scenes of ../shared/data/cave, 11 / 1 / 4 (the paper's split is not stated)
CAVE_SCENES = {
    "train": ("balloons", "cd", "clay", "egyptian_statue", "fake_and_real_beers", "fake_and_real_lemon_slices",
              "fake_and_real_peppers", "fake_and_real_sushi", "feathers", "glass_tiles", "jelly_beans"),
    "validation": ("paints",),
    "test": ("pompoms", "real_and_fake_peppers", "stuffed_toys", "thread_spools"),
}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One dataset. ``bands`` None: learnt from the files; ``files``: the downloaded file names it
    may come as (``()``: a folder); ``crop``: (row0, row1, col0, col1), 0-based half-open, of the
    valid region, and ``raw_shape`` the (H, W) the raw scene must have for it; ``scene``: the strip
    scene's name in window ids (default ``name``); ``embedded``: a file shipped in ``lkca_jax/data``
    read when ``config.data.path`` is empty; ``tfds``: the TFDS builder's name ('' for none)."""

    name: str
    title: str
    bands: int | None
    layout: str
    files: tuple[str, ...] = ()
    key: str = ""
    crop: tuple[int, int, int, int] | None = None
    raw_shape: tuple[int, int] | None = None
    normalisation: str = "global_max"
    norm_value: float = 0.0
    n_test: int = 0
    test_size: int = 0
    scenes: dict = dataclasses.field(default_factory=dict)
    patch_size: int = 0
    stride: int = 0
    scene: str = ""
    embedded: str = ""
    tfds: str = ""
    description: str = ""
    homepage: str = ""
    citation: str = ""
    download: str = ""

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"{self.name}: layout must be one of {LAYOUTS}, got {self.layout!r}")

    def data_fields(self) -> dict:
        """The ``config.data`` fields this dataset sets over the base config's."""
        fields = {"protocol": self.name, "key": self.key, "normalisation": self.normalisation,
                  "norm_value": self.norm_value, "test_size": self.test_size, "patch_size": self.patch_size,
                  "stride": self.stride}
        if self.scenes:
            fields.update(train_scenes=self.scenes["train"], val_scenes=self.scenes["validation"],
                          test_scenes=self.scenes["test"])
        return fields


DATASETS = {d.name: d for d in (
    Dataset(
        "chikusei", "Chikusei (Headwall Hyperspec-VNIR-C, 128 bands, 363-1018 nm)", 128, "strip",
        files=("HyperspecVNIR_Chikusei_20140729.mat",), key="chikusei",
        crop=(106, 2410, 143, 2191), raw_shape=(2517, 2335),  # SSPSR: rows 107:2410, cols 144:2191 (1-based)
        n_test=4, test_size=512, tfds="chikusei",
        description="Chikusei airborne hyperspectral scene (2517 x 2335 x 128, 363-1018 nm), cropped to 2304 x 2048 "
                    "and divided by its max; 4 test images of 512 x 512 from the top, patches from the rows below.",
        homepage="https://naotoyokoya.com/Download.html",
        citation="N. Yokoya and A. Iwasaki, Airborne hyperspectral data over Chikusei, Univ. of Tokyo, "
                 "Tech. Rep. SAL-2016-05-27, 2016.",
        download="Download 'Hyperspectral data (MAT format)' (HyperspecVNIR_Chikusei_20140729_MAT.zip) from "
                 "https://naotoyokoya.com/Download.html, unzip it and put HyperspecVNIR_Chikusei_20140729.mat "
                 "(MATLAB v7.3, variable 'chikusei') directly in manual_dir."),
    Dataset(
        "houston", "Houston 2018 (ITRES CASI 1500, 48 bands, 380-1050 nm)", 48, "strip",
        files=("houston2018.mat", "20170218_UH_CASI_S4_NAD83.hdr", "houston2018.tif", "houston2018.npy"),
        n_test=8, test_size=256, tfds="houston2018",
        description="Houston 2018 hyperspectral scene (48 bands, 380-1050 nm), divided by its max; 8 test images "
                    "of 256 x 256 from the top, patches from the rows below.",
        homepage="https://hyperspectral.ee.uh.edu/?page_id=1075",
        citation="Y. Xu et al., Advanced multi-sensor optical remote sensing for urban land use and land cover "
                 "classification: outcome of the 2018 IEEE GRSS Data Fusion Contest, IEEE JSTARS 12(6), 2019.",
        download="Request the 2018 IEEE GRSS Data Fusion Contest data (https://hyperspectral.ee.uh.edu/?page_id=1075 "
                 "or IEEE DataPort), and put in manual_dir either the ENVI pair 20170218_UH_CASI_S4_NAD83.hdr + "
                 "20170218_UH_CASI_S4_NAD83.pix from FullHSIDataset, or the 48-band cube saved as houston2018.mat "
                 "(its only 3-D variable), houston2018.tif or houston2018.npy."),
    Dataset(
        # SSPSR's scripts hint at 8000; the test size is not stated (3 x 224 = 672 <= 715, a multiple of 8).
        "pavia", "Pavia Centre (ROSIS, 102 bands)", 102, "strip", files=("Pavia.mat",), key="pavia",
        normalisation="constant", norm_value=8000.0, n_test=3, test_size=224, tfds="pavia_centre",
        description="Pavia Centre (ROSIS, 1096 x 715 x 102), divided by 8000; 3 test images of 224 x 224 from the "
                    "top (the rightmost remainder discarded), patches from the rows below.",
        homepage="https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes",
        citation="ROSIS Pavia Centre scene, courtesy of P. Gamba, University of Pavia.",
        download="Download Pavia.mat (Pavia Centre, variable 'pavia') from "
                 "https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes and put it in "
                 "manual_dir."),
    Dataset(
        "cave", "CAVE multispectral (31 bands, 400-700 nm)", 31, "scenes",
        normalisation="constant", norm_value=65535.0, scenes=CAVE_SCENES, tfds="cave",
        description="CAVE multispectral images (31 bands, 400-700 nm, 16-bit PNG per band), divided by 65535; "
                    "scenes split as lkca_jax.data.registry.CAVE_SCENES, patches from the training scenes, the "
                    "others whole.",
        homepage="https://cave.cs.columbia.edu/repository/Multispectral",
        citation="F. Yasuma, T. Mitsunaga, D. Iso and S. K. Nayar, Generalized assorted pixel camera: postcapture "
                 "control of resolution, dynamic range, and spectrum, IEEE TIP 19(9), 2010.",
        download="Download complete_ms_data.zip from https://cave.cs.columbia.edu/repository/Multispectral and unzip "
                 "it so that manual_dir holds one <scene>_ms folder per scene (e.g. balloons_ms/), each holding its "
                 "31 band PNGs (a nested <scene>_ms/<scene>_ms/ level, as in the official zip, is fine)."),
    Dataset(
        "folder", "Any folder of hyperspectral cubes", None, "folder", tfds="hsi_folder",
        description="A folder of cubes in any format lkca_jax reads, each divided by the global max; a seeded "
                    "shuffle of the scene names puts 20% of the scenes in test and 10% in validation.",
        download="Put the cubes (.mat, .npy, .npz, .tif, ENVI .hdr + data, or folders of band PNGs), all with the "
                 "same number of bands, directly in manual_dir."),
    Dataset(
        # The embedded ROSIS crop, already reflectance in 0..1: two 48 x 48 test images, 32 x 32 patches.
        "sample", "The embedded ROSIS Pavia crop (100 x 100, 102 bands)", 102, "strip", key="data",
        normalisation="constant", norm_value=1.0, test_size=48, patch_size=32, stride=8, scene="pavia_sample",
        embedded="sample/pavia_rosis_100.npz"),
)}


def dataset_of(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is not registered; known: {', '.join(DATASETS)}")
    return DATASETS[name]
