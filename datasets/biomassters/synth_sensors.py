"""What the satellites see of a simulated chip: leaf-on spectra, the seasons, and the
Sentinel-2 and Sentinel-1 models of :mod:`gsr_bench_datasets.biomassters.synth` (see its
docstring for what they simulate and why)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FIELD, WATER, BOG, ROAD, CUT, FOREST = range(6)
PINE, SPRUCE, BIRCH = range(3)

# Leaf-on reflectance of B2 B3 B4 B5 B6 B7 B8 B8A B11 B12.
SPECTRA = {
    "low": [0.050, 0.075, 0.085, 0.125, 0.165, 0.180, 0.190, 0.200, 0.250, 0.170],
    "pine": [0.020, 0.040, 0.024, 0.070, 0.175, 0.215, 0.235, 0.245, 0.115, 0.050],
    "spruce": [0.015, 0.032, 0.018, 0.058, 0.160, 0.200, 0.215, 0.225, 0.100, 0.042],
    "birch": [0.024, 0.052, 0.024, 0.085, 0.265, 0.320, 0.345, 0.355, 0.155, 0.065],
    "crop": [0.035, 0.070, 0.040, 0.110, 0.300, 0.370, 0.410, 0.420, 0.215, 0.105],
    "soil": [0.060, 0.085, 0.105, 0.130, 0.150, 0.165, 0.180, 0.190, 0.270, 0.210],
    "water": [0.030, 0.035, 0.022, 0.018, 0.012, 0.010, 0.008, 0.008, 0.005, 0.004],
    "bog": [0.040, 0.060, 0.060, 0.095, 0.170, 0.200, 0.215, 0.225, 0.170, 0.090],
    "road": [0.090, 0.110, 0.130, 0.150, 0.170, 0.180, 0.190, 0.200, 0.250, 0.210],
    "snow": [0.780, 0.770, 0.760, 0.740, 0.720, 0.700, 0.680, 0.670, 0.080, 0.060],
    "cloud": [0.450, 0.440, 0.440, 0.450, 0.470, 0.480, 0.490, 0.490, 0.380, 0.280],
}
# Per month index (0 = September): greenness of deciduous vegetation and crops, snow cover,
# canopy illumination, frozen ground, cloudiness and how often a month has an S2 image at all.
GREEN = np.array([0.70, 0.30, 0.05, 0.0, 0.0, 0.0, 0.0, 0.10, 0.55, 0.95, 1.0, 0.90])
SNOW = np.array([0.0, 0.05, 0.45, 0.90, 1.0, 1.0, 0.90, 0.25, 0.0, 0.0, 0.0, 0.0])
ILLUM = np.array([0.92, 0.80, 0.65, 0.55, 0.58, 0.72, 0.86, 0.95, 1.0, 1.0, 1.0, 0.96])
FROZEN = np.array([0.0, 0.1, 0.5, 1.0, 1.0, 1.0, 0.8, 0.1, 0.0, 0.0, 0.0, 0.0])
CLOUDINESS = np.array([0.30, 0.40, 0.55, 0.60, 0.55, 0.40, 0.30, 0.20, 0.15, 0.15, 0.15, 0.20])
S2_PRESENT = np.array([0.92, 0.72, 0.45, 0.14, 0.30, 0.62, 0.85, 1.0, 1.0, 1.0, 1.0, 1.0])
S1_PRESENT = 0.97


def smooth_noise(rng: np.random.Generator, size: int, cell: float) -> np.ndarray:
    """Unit-variance Gaussian noise correlated over about ``cell`` pixels."""
    if cell <= 4:  # short correlation: a small Gaussian kernel on white noise is cheapest
        fine = ndimage.gaussian_filter(rng.standard_normal((size, size), np.float32), cell / 2)
    else:  # long correlation: interpolate coarse noise rather than convolve with a wide kernel
        n = max(2, int(np.ceil(size / cell)) + 3)
        coarse = rng.standard_normal((n, n), np.float32)
        fine = ndimage.zoom(coarse, size / (n - 3), order=2, mode="reflect")[:size, :size]
    fine -= fine.mean()
    return (fine / (fine.std() + 1e-9)).astype(np.float32)


def _shift(image: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Sub-pixel shift of the last two axes by up to 3 pixels (bilinear, edges repeated).

    Slices of an edge-padded copy: ten times faster than ``ndimage.shift`` for a whole stack.
    """
    dy, dx = np.clip(offset, -3, 3)
    h, w = image.shape[-2:]
    pad = 4
    lead = [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, [*lead, (pad, pad), (pad, pad)], mode="edge")
    y0, x0 = int(np.floor(-dy)), int(np.floor(-dx))
    fy, fx = np.float32(-dy - y0), np.float32(-dx - x0)

    def at(oy: int, ox: int) -> np.ndarray:
        return padded[..., pad + oy : pad + oy + h, pad + ox : pad + ox + w]

    top = (1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)
    bottom = (1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)
    return ((1 - fy) * top + fy * bottom).astype(np.float32)


BANDS_20M = [3, 4, 5, 7, 8, 9]  # B5 B6 B7 B8A B11 B12: 20 m bands delivered on the 10 m grid
S2_PSF_SIGMA = 0.5  # pixels: the MSI's optics blur a 10 m pixel into its neighbours


def _sensor_resolution(refl: np.ndarray) -> np.ndarray:
    """What the sensor resolves: a Gaussian PSF on every band, and the 20 m bands averaged over
    2 x 2 pixels and repeated onto the 10 m grid (mixed pixels at every stand edge and gap)."""
    out = ndimage.gaussian_filter(refl, (0, S2_PSF_SIGMA, S2_PSF_SIGMA))
    h, w = out.shape[-2:]
    coarse = out[BANDS_20M].reshape(len(BANDS_20M), h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    out[BANDS_20M] = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)
    return out.astype(np.float32)


def _spectrum(name: str) -> np.ndarray:
    return np.asarray(SPECTRA[name], np.float32)[:, None, None]


def s2_basis(
    agb: np.ndarray, cover: np.ndarray, species: np.ndarray, mix: np.ndarray, site: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Leaf-off reflectance ``P``, its leaf-on change ``Q`` and the illumination weight.

    Every month's reflectance is ``(P + green * Q) * (1 - w + w * illumination)``: computing the
    per-pixel spectra once per chip keeps a chip well under a second.
    """
    sat = (1 - np.exp(-agb / 45.0)).astype(np.float32)  # canopy closure: saturates past ~150 Mg/ha
    table = np.stack([np.asarray(SPECTRA[s], np.float32) for s in ("pine", "spruce", "birch")])
    # mixed stands: the main species blended with a random other one
    other = table[(species + 1 + (mix > 0.5)) % 3]
    con = np.moveaxis((1 - 0.5 * mix[..., None]) * table[species] + 0.5 * mix[..., None] * other, -1, 0)
    con = con * site[[0, 0, 0, 1, 1, 1, 1, 1, 2, 2]]
    low, soil = _spectrum("low"), _spectrum("soil")
    # Deciduous canopies lose their leaves (dormancy 0 + green); conifers only dull in winter.
    d0 = np.where(species == BIRCH, 0.0, 0.75).astype(np.float32)
    d1 = np.where(species == BIRCH, 1.0, 0.25).astype(np.float32)
    p = (1 - sat) * soil + sat * (low + d0 * (con - low))
    q = (1 - sat) * (low - soil) + sat * d1 * (con - low)
    bog_p, bog_q = 0.6 * soil, _spectrum("bog") - 0.6 * soil
    rules = (
        (cover == FIELD, soil, _spectrum("crop") - soil),
        (cover == WATER, _spectrum("water"), 0.0 * soil),
        (cover == BOG, 0.5 * bog_p + 0.5 * p, 0.5 * bog_q + 0.5 * q),
        (cover == ROAD, _spectrum("road"), 0.0 * soil),
    )
    for mask, rp, rq in rules:
        p = np.where(mask[None], rp, p)
        q = np.where(mask[None], rq, q)
    shade = np.where(np.isin(cover, [FOREST, CUT]), 0.25, 0.0).astype(np.float32)
    return p.astype(np.float32), q.astype(np.float32), shade


def s2_month(
    rng: np.random.Generator,
    m: int,
    basis: tuple[np.ndarray, ...],
    agb: np.ndarray,
    cover: np.ndarray,
    stand: np.ndarray,
    n: int,
    offset: np.ndarray,
    green_shift: np.ndarray,
) -> np.ndarray:
    size = agb.shape[0]
    p, q, shade = basis
    green = np.clip(np.float32(GREEN[m]) + green_shift * (GREEN[m] * (1 - GREEN[m]) > 0), 0, 1)
    refl = (p + green[None] * q) * (1 - shade + shade * np.float32(ILLUM[m]))
    # Stand-level and pixel-level variation that biomass does not explain.
    stand_gain = rng.lognormal(0, 0.09, (3, n)).astype(np.float32)[:, stand]
    refl = refl * stand_gain[[0, 0, 0, 1, 1, 1, 1, 1, 2, 2]]
    refl = refl * (1 + 0.07 * smooth_noise(rng, size, 1.5))[None]
    # Snow shows through a canopy in proportion to its openness.
    snow = SNOW[m] * rng.uniform(0.7, 1.0)
    if snow > 0:
        seen = snow * np.where(np.isin(cover, [FOREST, CUT, BOG]), np.exp(-agb / 60.0), 1.0)
        seen = seen.astype(np.float32)
        refl = refl + seen[None] * (_spectrum("snow") - refl)
    # Clouds and their shadows, with a cloud probability band that matches them.
    cover_frac = np.clip(rng.beta(1.2, 1.2 / CLOUDINESS[m] - 1.2), 0, 0.97)
    field_c = smooth_noise(rng, size, rng.uniform(18, 45))
    threshold = np.quantile(field_c, 1 - cover_frac)
    alpha = np.clip((field_c - threshold) / 0.6, 0, 1)
    shift = rng.integers(-25, 26, 2)
    shadow = np.roll(alpha, tuple(int(s) for s in shift), axis=(0, 1)) * (1 - alpha)
    refl = refl * (1 - 0.55 * shadow)[None]
    refl = refl + alpha[None] * (_spectrum("cloud") * rng.uniform(0.8, 1.4) - refl)
    if rng.random() < 0.35:  # thin haze the cloud mask misses: brighter, flatter visible bands
        haze = np.clip(rng.uniform(0.02, 0.07) * (1 + 0.5 * smooth_noise(rng, size, 60)), 0, None)
        refl = refl + haze[None] * np.linspace(1.0, 0.1, 10, dtype=np.float32)[:, None, None]
    refl = _shift(refl, offset + rng.normal(0, 0.3, 2))
    refl = _sensor_resolution(refl)
    clp = np.clip(
        100 * np.clip((field_c - threshold + 0.5) / 0.9, 0, 1)
        + 6 * rng.standard_normal((size, size), np.float32),
        0,
        100,
    )
    if rng.random() < 0.03:  # rare invalid cloud mask
        row = int(rng.integers(0, size - 8))
        clp[row : row + int(rng.integers(2, 8))] = 255
    dn = refl * 10000 + 30 * rng.standard_normal(refl.shape, np.float32)
    out = np.empty((11, size, size), np.uint16)
    out[:10] = np.clip(dn, 1, 65535).astype(np.uint16)
    out[10] = np.round(clp).astype(np.uint16)
    return out


def s1_month(
    rng: np.random.Generator,
    m: int,
    agb: np.ndarray,
    cover: np.ndarray,
    offset: np.ndarray,
    roughness: np.ndarray,
    rain: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """C-band backscatter: a dynamic range of only 2-4 dB between clear-cut and closed forest,
    saturating near 50-100 Mg/ha; soil moisture, surface roughness and frozen ground compete."""
    size = agb.shape[0]
    sat = 1 - np.exp(-agb / 40.0)
    frozen = FROZEN[m]
    moisture = rng.normal(0, 0.8)
    wetness = 0.8 * (rng.normal() * rain[0] + rng.normal() * rain[1])  # rain cells, drying soils
    vv = -11.3 + 2.2 * sat - 1.8 * frozen + (1 - sat) * (0.6 * roughness + moisture + wetness)
    vh = -18.0 + 4.0 * sat - 1.5 * frozen + (1 - sat) * (0.4 * roughness + 0.6 * moisture + 0.6 * wetness)
    open_land = np.isin(cover, [FIELD, ROAD])
    vv = np.where(open_land, -10.5 + roughness + moisture + wetness - 3.0 * frozen, vv)
    vh = np.where(open_land, -18.5 + roughness + moisture + wetness - 2.5 * frozen, vh)
    wet = cover == BOG
    vv = np.where(wet, -12.5 + moisture - 2.0 * frozen + 2.0 * sat, vv)
    vh = np.where(wet, -20.0 + moisture - 1.5 * frozen + 3.0 * sat, vh)
    water = cover == WATER
    vv = np.where(water, -21.0 + 4.0 * frozen + rng.normal(0, 1.5), vv)
    vh = np.where(water, -27.5 + 2.0 * frozen + rng.normal(0, 1.0), vh)
    terrain = 0.8 * smooth_noise(rng, size, 20)
    vv, vh = _shift(np.stack([vv, vh]), offset + rng.normal(0, 0.3, 2))
    bands = []
    for base, pass_offset in ((vv, 0.0), (vh, 0.0), (vv, -0.5), (vh, -0.5)):
        linear = 10 ** ((base + pass_offset + terrain) / 10)
        looks = 4.4  # equivalent number of looks of the multilooked GRD product
        speckle = rng.standard_gamma(looks, (size, size), np.float32) / looks
        bands.append(10 * np.log10(linear * speckle))
    out = np.stack(bands).astype(np.float32)
    if rng.random() < 0.08:  # descending pass missing
        out[2:] = -9999.0
    if rng.random() < 0.10:  # swath edge: a strip of no data
        width = int(rng.integers(3, 40))
        if rng.random() < 0.5:
            out[:, :, :width] = -9999.0
        else:
            out[:, :, -width:] = -9999.0
    return out


# --- official layout -------------------------------------------------------------------------
