"""netCDF-3 files from Python: ``ndstream.open("file.nc:/var")`` reads a
variable of a classic, 64-bit offset or CDF-5 file with ndstream's own
reader (no libhdf5), giving netCDF-C's stored values (as netCDF4-python
gives them with auto-masking off), lazily, in chunks; reductions, slicing
and writing to Zarr work on it like on any other array."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ndstream_only

netCDF4 = pytest.importorskip("netCDF4")
zarr = pytest.importorskip("zarr")


def stored(path, var):
    with netCDF4.Dataset(path) as ds:
        v = ds[var]
        v.set_auto_maskandscale(False)
        return np.asarray(v[...])


@pytest.fixture(params=["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"])
def ncfile(request, tmp_path):
    rng = np.random.default_rng(3)
    path = str(tmp_path / "t.nc")
    with netCDF4.Dataset(path, "w", format=request.param) as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", 30)
        ds.createDimension("lon", 40)
        t2m = ds.createVariable("t2m", "f4", ("time", "lat", "lon"), fill_value=np.float32(-999))
        t2m[0:24] = rng.normal(280, 10, (24, 30, 40)).astype("f4")
        t2m[3, 4, 5] = -999  # a fill value: stored as is, not masked
        t2m.units = "K"
        ds.createVariable("count", "i2", ("time",))[0:24] = np.arange(24)
        ds.createVariable("lat", "f8", ("lat",))[:] = np.linspace(-90, 90, 30)
    return path


def test_open_reads_the_stored_values(da, ncfile):
    x = da.open(f"{ncfile}:/t2m")
    want = stored(ncfile, "t2m")
    assert x.shape == want.shape == (24, 30, 40)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x.compute(), want)
    np.testing.assert_array_equal(da.open(f"{ncfile}:/count").compute(), stored(ncfile, "count"))


def test_reductions_and_slices_of_a_record_variable(da, ncfile):
    x = da.open(f"{ncfile}:/t2m", chunks=(5, 30, 40))
    want = stored(ncfile, "t2m")
    np.testing.assert_allclose(x.mean(axis=0).compute(), want.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(x.max().compute(), want.max())
    np.testing.assert_array_equal(x[::-3, 2, ::7].compute(), want[::-3, 2, ::7])
    lat = da.open(f"{ncfile}:/lat")
    np.testing.assert_array_equal(
        (x[0] * lat[:, None]).compute(), want[0] * stored(ncfile, "lat")[:, None]
    )


def test_a_netcdf3_variable_converts_to_zarr(da, ncfile, tmp_path):
    out = str(tmp_path / "t2m.zarr")
    da.to_zarr(da.open(f"{ncfile}:/t2m"), out)
    np.testing.assert_array_equal(zarr.open_array(out, mode="r")[:], stored(ncfile, "t2m"))


def test_a_missing_variable_is_named(da, ncfile):
    with pytest.raises(FileNotFoundError, match='variable "nope" does not exist'):
        da.open(f"{ncfile}:/nope")
