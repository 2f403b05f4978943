"""One file format for every bayesgmm estimator: a checksummed, atomically written netCDF-4 file.

An estimator becomes saveable by inheriting :class:`SaveLoadMixin`, declaring its format tag
and writing two small hooks (its data to netCDF and back); this module does the rest, the
same way for every estimator: the faithful encoding of parameters and attributes, the
in-memory serialisation, the header and its SHA-256, the atomic write, and the checks (with
clear errors) when a file is read. It imports no estimator.

File layout
-----------
::

    bytes 0-511     header: ASCII text, then NUL bytes up to byte 512
                        bayesgmm model file
                        header-version: 1
                        format: bayesgmm.GaussianMixture/2
                        payload-size: 18231
                        sha256: 5f1c...(64 hex digits)
    bytes 512-end   payload: the netCDF-4 (HDF5) file written by xarray / h5netcdf

HDF5 treats the first 512 bytes as a *user block* and skips them, so a saved model is still
a valid netCDF-4 file: ``xarray.open_dataset`` / ``xarray.open_datatree`` (and ArviZ) read it
directly. ``sha256`` is the SHA-256 of the three lines above it followed by the payload, so
loading detects a change anywhere: it checks that bytes 0-511 are byte for byte the header
made from the parsed fields (NUL padding included), then the checksum (tag, size and every
payload byte), and only then the tag and the netCDF content.

In the payload, the root group's attributes ``bayesgmm_format`` (the tag again) and
``bayesgmm_attrs`` (JSON) hold what the estimator's hook stored besides arrays: constructor
parameters and scalar attributes, in a JSON encoding that keeps tuples, numpy arrays and
scalars (dtype included), dataclasses and ``RandomState`` objects exactly. Variables of
``object`` or string dtype carry a ``bayesgmm_dtype`` attribute so that they are read back
with their exact dtype and element types (object arrays of mixed ids included).

Writing is atomic: the whole file is built in memory, written to ``<path>.tmp-<pid>``,
flushed and ``fsync``-ed, then renamed over ``path`` with ``os.replace``; on any failure
(a full disk included) the temporary file is removed, the previous file at ``path`` is left
as it was, and the error names ``path``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
from os import PathLike
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:  # xarray is imported on first save or load: `import bayesgmm` stays fast
    import xarray as xr

__all__ = [
    "ATTRS_ATTR",
    "FORMAT_ATTR",
    "HEADER_SIZE",
    "SaveLoadMixin",
    "fitted_attributes",
    "fitted_variables",
    "from_netcdf_data",
    "read_model_file",
    "require_fitted",
    "restore_fitted",
    "to_netcdf_data",
    "write_model_file",
]

#: Size of the header in front of the netCDF-4 payload (an HDF5 user block: >= 512, a power of 2).
HEADER_SIZE = 512
#: Root attribute holding the format tag, e.g. ``"bayesgmm.GaussianMixture/2"``.
FORMAT_ATTR = "bayesgmm_format"
#: Root attribute holding the estimator's JSON attributes (parameters, scalars).
ATTRS_ATTR = "bayesgmm_attrs"

_MAGIC = b"bayesgmm model file\n"
_HEADER_VERSION = 1
#: The header's fields covered by its checksum (with the payload after them).
_SIGNED_TEXT = "header-version: {version}\nformat: {tag}\npayload-size: {size}\n"
_HEADER_TEXT = "bayesgmm model file\n" + _SIGNED_TEXT + "sha256: {sha256}\n"
_HEADER_RE = re.compile(
    r"bayesgmm model file\n"
    r"header-version: (?P<version>[0-9]{1,6})\n"
    r"format: (?P<tag>[!-~]{1,200})\n"
    r"payload-size: (?P<size>[0-9]{1,20})\n"
    r"sha256: (?P<sha256>[0-9a-f]{64})\n"
)
_TAG_RE = re.compile(r"[!-~]{1,200}")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_NETCDF3_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_DTYPE_ATTR = "bayesgmm_dtype"
_ENCODING_ATTR = "bayesgmm_encoding"
#: What a hook raises on content that is missing or malformed (reported as ValueError).
_CONTENT_ERRORS = (KeyError, ValueError, TypeError, IndexError, AttributeError)


class SaveLoadMixin:
    """``save`` and ``load`` for an estimator, in the one bayesgmm file format.

    A subclass declares ``_file_format`` (``"bayesgmm.<Name>/<version>"``; bump the version
    when the content changes) and, if its JSON attributes hold dataclass instances,
    ``_file_types`` (the dataclasses a file may rebuild); and implements the two hooks
    ``_to_netcdf`` and ``_from_netcdf``.
    """

    _file_format: ClassVar[str]
    _file_types: ClassVar[tuple[type, ...]] = ()

    def _to_netcdf(self) -> tuple[xr.Dataset | xr.DataTree, dict[str, Any]]:
        """The fitted model as netCDF data (arrays) and a dict of everything else.

        The dict may hold anything the JSON encoding keeps (see the module docstring); the
        data must not use the root attributes ``bayesgmm_format`` / ``bayesgmm_attrs``.
        """
        raise NotImplementedError

    @classmethod
    def _from_netcdf(cls, data: xr.Dataset | xr.DataTree, attrs: dict[str, Any]):
        """The fitted model from what :meth:`_to_netcdf` returned (read back from a file).

        Missing or inconsistent content raises KeyError, ValueError, TypeError or IndexError,
        reported to the user as a ValueError naming the file.
        """
        raise NotImplementedError

    def save(self, path: str | PathLike) -> None:
        """Write the fitted model to ``path`` (see :mod:`bayesgmm.io` for the format).

        Parameters
        ----------
        path : str or path-like
            The file to write; an existing file is replaced atomically (it is left intact
            if the save fails).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the model is not fitted.
        TypeError
            If a parameter holds a value the file format cannot store exactly.
        OSError
            If the file cannot be written (the message names ``path``).
        """
        write_model_file(path, to_netcdf_data(self))

    @classmethod
    def load(cls, path: str | PathLike):
        """Read a model written by ``save``.

        Only files of this format version load: files saved before it (plain netCDF files
        without the bayesgmm header, or an earlier format version) are refused with a
        ValueError saying so; refit and save again.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        The fitted estimator, of this class.

        Raises
        ------
        OSError
            If the file cannot be read (e.g. it does not exist).
        ValueError
            If the file is not a complete, intact saved model of this class (empty,
            truncated, corrupted, another estimator's or a foreign file); the message
            names the file and what is wrong.
        """
        data = read_model_file(path, cls._file_format, what=cls.__name__)
        return from_netcdf_data(cls, data, source=repr(os.fspath(path)))


# --------------------------------------------------------------------------- estimators
def fitted_attributes(estimator: object) -> dict[str, Any]:
    """The estimator's fitted attributes: public instance attributes ending in ``_``
    (scikit-learn's convention, as ``check_is_fitted`` sees them)."""
    return {
        name: value
        for name, value in vars(estimator).items()
        if name.endswith("_") and not name.startswith("_")
    }


def fitted_variables(
    estimator: object, fitted: dict[str, Any], dims: dict[str, tuple[str, ...]]
) -> tuple[dict[str, tuple], dict[str, Any]]:
    """Split ``fitted`` (from :func:`fitted_attributes`) for a file.

    Returns the ndarray attributes as netCDF variables ``{name: (dims, array)}`` (dims from
    ``dims``, else ``<name>dim_0``, ...) and the JSON attributes: ``params`` (the
    estimator's constructor parameters), ``fitted`` (the other fitted values) and
    ``arrays`` (the names of the variables), which :func:`restore_fitted` reads back.
    """
    arrays = {name: value for name, value in fitted.items() if isinstance(value, np.ndarray)}
    variables = {
        name: (dims.get(name) or tuple(f"{name}dim_{i}" for i in range(value.ndim)), value)
        for name, value in arrays.items()
    }
    attrs = {
        "params": estimator.get_params(deep=False),
        "fitted": {name: value for name, value in fitted.items() if name not in arrays},
        "arrays": sorted(arrays),
    }
    return variables, attrs


def restore_fitted(cls: type, data: xr.Dataset, attrs: dict[str, Any]):
    """An estimator ``cls(**params)`` with the fitted values and arrays that
    :func:`fitted_variables` stored."""
    estimator = cls(**attrs["params"])
    for name, value in attrs["fitted"].items():
        setattr(estimator, name, value)
    for name in attrs["arrays"]:
        setattr(estimator, name, data[name].values)
    return estimator


def require_fitted(estimator: object, names: tuple[str, ...]) -> None:
    """KeyError naming the fitted attributes of ``names`` that a loaded estimator lacks
    (a file with the right tag but missing content)."""
    missing = [name for name in names if not hasattr(estimator, name)]
    if missing:
        raise KeyError(f"fitted attribute(s) {missing}")


def to_netcdf_data(model: SaveLoadMixin) -> xr.Dataset | xr.DataTree:
    """A fitted model as netCDF data: what ``save`` writes, also for nesting one model
    inside another's file (e.g. as a group of a ``DataTree``).

    Raises NotFittedError if the model is not fitted.
    """
    check_is_fitted(model)
    data, attrs = model._to_netcdf()
    reserved = {FORMAT_ATTR, ATTRS_ATTR} & set(data.attrs)
    if reserved:
        raise ValueError(f"the model's data must not set the attribute(s) {sorted(reserved)}")
    data = data.copy(deep=False)
    data.attrs = {
        **data.attrs,
        FORMAT_ATTR: model._file_format,
        ATTRS_ATTR: json.dumps(_encode(attrs, "attrs"), allow_nan=False),
    }
    return data


def from_netcdf_data(cls: type, data: xr.Dataset | xr.DataTree, *, source: str = "the data"):
    """The model of class ``cls`` held by ``data`` (from :func:`to_netcdf_data`).

    Raises ValueError, naming ``source``, if ``data`` is another estimator's, or its
    content is missing or inconsistent.
    """
    what = cls.__name__
    tag = data.attrs.get(FORMAT_ATTR)
    if tag != cls._file_format:
        raise ValueError(
            f"{source} is not a saved bayesgmm {what} model: {_wrong_tag(tag, cls._file_format)}"
        )
    if ATTRS_ATTR not in data.attrs:
        raise ValueError(
            f"{source} is not a saved bayesgmm {what} model: the tag is right but the "
            f"content is incomplete (no {ATTRS_ATTR!r} attribute)"
        )
    try:
        attrs = _decode(json.loads(data.attrs[ATTRS_ATTR]), cls._file_types)
        if not isinstance(attrs, dict):
            raise ValueError(f"{ATTRS_ATTR} is not a JSON object")
        data = data.copy(deep=False)
        data.attrs = {k: v for k, v in data.attrs.items() if k not in (FORMAT_ATTR, ATTRS_ATTR)}
        return cls._from_netcdf(data, attrs)
    except _CONTENT_ERRORS as err:
        detail = f"missing {err}" if isinstance(err, KeyError) else str(err)
        raise ValueError(
            f"{source} is not a saved bayesgmm {what} model: the tag is right but the "
            f"content is incomplete or inconsistent ({type(err).__name__}: {detail})"
        ) from None


def _wrong_tag(tag: object, expected: str) -> str:
    if not isinstance(tag, str):
        return f"it has no bayesgmm format tag (expected {expected!r})"
    name, _, version = tag.rpartition("/")
    expected_name, _, expected_version = expected.rpartition("/")
    if name == expected_name:
        return (
            f"it is format version {version}, this bayesgmm reads version {expected_version} "
            "only (files saved by other versions do not load)"
        )
    owner = name.removeprefix("bayesgmm.")
    return f"it holds a {tag!r} file; load it with {owner}.load"


# ---------------------------------------------------------------------------------- files
def write_model_file(path: str | PathLike, data: xr.Dataset | xr.DataTree) -> None:
    """Write ``data`` (from :func:`to_netcdf_data`) to ``path``: header, then netCDF-4.

    The file is serialised in memory, written to ``<path>.tmp-<pid>``, flushed, ``fsync``-ed
    and renamed over ``path``; on failure the temporary file is removed, an existing file at
    ``path`` is left untouched, and the OSError names ``path``.
    """
    tag = data.attrs.get(FORMAT_ATTR)
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise ValueError(f"data needs a {FORMAT_ATTR} attribute (printable ASCII), got {tag!r}")
    payload = bytes(_encode_data(data).to_netcdf(engine="h5netcdf"))
    header = _header(tag, payload)
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise _naming(err, path) from None
        raise
    _fsync_directory(path)


def _naming(err: OSError, path: str) -> OSError:
    """``err`` re-made to name ``path`` (not the temporary file)."""
    reason = err.strerror or str(err)
    if err.errno is None:
        return OSError(f"cannot save the model to {path!r}: {reason}")
    try:
        return type(err)(err.errno, f"cannot save the model ({reason})", path)
    except TypeError:
        return OSError(err.errno, f"cannot save the model ({reason})", path)


def _fsync_directory(path: str) -> None:
    """Make the rename durable (best effort: not every platform opens directories)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _checksum(version: int, tag: str, size: int, payload: bytes) -> str:
    """SHA-256 of the header's signed fields followed by the payload."""
    signed = _SIGNED_TEXT.format(version=version, tag=tag, size=size).encode("ascii")
    return hashlib.sha256(signed + payload).hexdigest()


def _header(tag: str, payload: bytes) -> bytes:
    sha256 = _checksum(_HEADER_VERSION, tag, len(payload), payload)
    text = _HEADER_TEXT.format(
        version=_HEADER_VERSION, tag=tag, size=len(payload), sha256=sha256
    ).encode("ascii")
    if len(text) > HEADER_SIZE:
        raise ValueError(f"format tag {tag!r} is too long for the {HEADER_SIZE}-byte header")
    return text.ljust(HEADER_SIZE, b"\0")


def read_model_file(
    path: str | PathLike, format_tag: str, *, what: str | None = None
) -> xr.Dataset | xr.DataTree:
    """Check and read a file written by :func:`write_model_file` with tag ``format_tag``.

    Returns the netCDF data, fully loaded: an ``xr.Dataset`` if the file has no groups,
    else an ``xr.DataTree``. Its root attributes still hold the tag and the JSON attributes
    (see :func:`from_netcdf_data`).

    Raises
    ------
    OSError
        If ``path`` cannot be read (FileNotFoundError if it does not exist).
    ValueError
        Naming the file and the problem, unless it is a complete, intact file with the tag
        ``format_tag``.
    """
    import xarray as xr

    name = repr(os.fspath(path))
    what = what or format_tag

    def refuse(reason: str) -> ValueError:
        return ValueError(f"{name} is not a saved bayesgmm {what} model: {reason}")

    with open(path, "rb") as f:
        content = f.read()
    header, payload = content[:HEADER_SIZE], content[HEADER_SIZE:]
    if not header.startswith(_MAGIC):
        raise refuse(_not_a_header(content))
    if len(content) < HEADER_SIZE:
        raise refuse(
            f"the file is truncated ({len(content)} bytes, shorter than its "
            f"{HEADER_SIZE}-byte header)"
        )
    fields = _parse_header(header)
    if fields is None:
        raise refuse(f"the file is corrupted (its {HEADER_SIZE}-byte bayesgmm header is damaged)")
    version, tag, size, sha256 = fields
    if _checksum(version, tag, size, payload) != sha256:
        if len(payload) < size:
            raise refuse(f"the file is truncated ({len(payload)} of {size} payload bytes)")
        if len(payload) > size:
            raise refuse(
                f"the file is corrupted ({len(payload) - size} unexpected bytes after its "
                f"{size}-byte payload)"
            )
        raise refuse("the file is corrupted (its SHA-256 does not match its header)")
    if version != _HEADER_VERSION:
        raise refuse(
            f"its header version is {version}, this bayesgmm reads version {_HEADER_VERSION}"
        )
    if tag != format_tag:
        raise refuse(_wrong_tag(tag, format_tag))
    try:
        with xr.open_datatree(io.BytesIO(payload), engine="h5netcdf") as tree:
            tree = tree.load()
    except Exception as err:  # any parser failure: an unreadable file
        raise refuse(f"its netCDF payload cannot be read ({type(err).__name__}: {err})") from None
    try:
        tree = _decode_tree(tree)
    except _CONTENT_ERRORS as err:
        raise refuse(f"a variable cannot be decoded ({type(err).__name__}: {err})") from None
    return tree.to_dataset() if not tree.children else tree


def _not_a_header(content: bytes) -> str:
    start = content[:HEADER_SIZE]
    if not content:
        return "the file is empty"
    if _MAGIC.startswith(start):
        return f"the file is truncated ({len(content)} bytes, inside its header)"
    if start.startswith(_HDF5_SIGNATURE):
        return (
            "it is a netCDF-4/HDF5 file without a bayesgmm header (written by another "
            "program, or by an earlier bayesgmm, whose files cannot be loaded)"
        )
    if start.startswith(_NETCDF3_SIGNATURES):
        return "it is a netCDF-3 file, not a bayesgmm model file"
    if not start.strip(b"\0"):
        return "its header is zeroed (the file is corrupted)"
    return f"it does not start with a bayesgmm header (first bytes {content[:16]!r})"


def _parse_header(header: bytes) -> tuple[int, str, int, str] | None:
    """The header's fields, or None unless the header is exactly the one they make."""
    try:
        text = header.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        return None
    match = _HEADER_RE.fullmatch(text)
    if match is None:
        return None
    version, tag = int(match["version"]), match["tag"]
    size, sha256 = int(match["size"]), match["sha256"]
    rebuilt = _HEADER_TEXT.format(version=version, tag=tag, size=size, sha256=sha256)
    if rebuilt.encode("ascii").ljust(HEADER_SIZE, b"\0") != header:
        return None
    return version, tag, size, sha256


# ----------------------------------------------------- variables: exact dtypes on reading
def _encode_data(data: xr.Dataset | xr.DataTree) -> xr.Dataset | xr.DataTree:
    import xarray as xr

    if isinstance(data, xr.Dataset):
        return _map_variables(data, _encode_variable)
    return xr.DataTree.from_dict(
        {
            node.path: _map_variables(node.to_dataset(inherit=False), _encode_variable)
            for node in data.subtree
        }
    )


def _decode_tree(tree: xr.DataTree) -> xr.DataTree:
    import xarray as xr

    return xr.DataTree.from_dict(
        {
            node.path: _map_variables(node.to_dataset(inherit=False), _decode_variable)
            for node in tree.subtree
        }
    )


def _map_variables(ds: xr.Dataset, func) -> xr.Dataset:
    import xarray as xr

    return xr.Dataset(
        {name: func(ds.variables[name]) for name in ds.data_vars},
        coords={name: func(ds.variables[name]) for name in ds.coords},
        attrs=ds.attrs,
    )


def _encode_variable(var: xr.Variable) -> xr.Variable:
    """String and object variables in a form netCDF stores, their dtype in an attribute."""
    import xarray as xr

    values = var.values
    kind = values.dtype.kind
    if kind not in "OUS":
        return var
    attrs = {**var.attrs, _DTYPE_ATTR: values.dtype.str if kind != "O" else "object"}
    if kind in "US":
        return xr.Variable(var.dims, values, attrs, encoding=var.encoding)
    flat = values.ravel().tolist()
    if all(type(v) is str and _plain_string(v) for v in flat):
        stored = np.array(flat, dtype=str)
    else:
        attrs[_ENCODING_ATTR] = "json"
        stored = np.array(
            [json.dumps(_encode(v, "element"), allow_nan=False) for v in flat], dtype=str
        )
    stored = stored.reshape(values.shape) if values.size else np.empty(values.shape, "<U1")
    return xr.Variable(var.dims, stored, attrs)


def _plain_string(value: str) -> bool:
    """True if netCDF stores the string exactly (UTF-8 encodable, no NUL)."""
    if "\0" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decode_variable(var: xr.Variable) -> xr.Variable:
    import xarray as xr

    if _DTYPE_ATTR not in var.attrs:
        return var
    attrs = dict(var.attrs)
    dtype = attrs.pop(_DTYPE_ATTR)
    encoding = attrs.pop(_ENCODING_ATTR, None)
    values = np.asarray(var.values)
    if dtype != "object":
        return xr.Variable(var.dims, values.astype(np.dtype(dtype)), attrs)
    out = np.empty(values.shape, dtype=object)
    flat = values.ravel().tolist()
    if encoding == "json":
        flat = [_decode(json.loads(v), ()) for v in flat]
    elif encoding is not None:
        raise ValueError(f"unknown {_ENCODING_ATTR} {encoding!r}")
    else:
        flat = [str(v) for v in flat]
    out.ravel()[:] = flat
    return xr.Variable(var.dims, out, attrs)


# ---------------------------------------------------------- attributes: a faithful JSON
_TAGS = ("__tuple__", "__ndarray__", "__scalar__", "__dataclass__", "__RandomState__", "__dict__")


def _encode(value: Any, where: str) -> Any:
    """``value`` as JSON-compatible data that :func:`_decode` turns back into an equal value
    of the same type (floats exactly, NaN and infinities included)."""
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"__scalar__": ["float", repr(value)]}
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"cannot save {where}: numpy scalar of dtype {value.dtype}")
        return {"__scalar__": [value.dtype.str, repr(value.item())]}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUO":
            raise TypeError(f"cannot save {where}: array of dtype {value.dtype}")
        flat = value.ravel().tolist()
        if value.dtype.kind == "f":
            flat = [repr(v) for v in flat]  # exact, NaN and inf included
        elif value.dtype.kind == "O":
            flat = [_encode(v, f"{where}[...]") for v in flat]
        return {"__ndarray__": [value.dtype.str, list(value.shape), flat]}
    if isinstance(value, np.random.RandomState):
        state = value.get_state(legacy=True)
        return {"__RandomState__": _encode(list(state), where)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: _encode(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
            if f.init
        }
        return {"__dataclass__": [type(value).__name__, fields]}
    if type(value) is list:
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if type(value) is tuple:
        return {"__tuple__": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if type(value) is dict:
        if all(type(k) is str for k in value) and not any(k in _TAGS for k in value):
            return {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {
            "__dict__": [
                [_encode(k, where), _encode(v, f"{where}[{k!r}]")] for k, v in value.items()
            ]
        }
    raise TypeError(
        f"cannot save {where} = {value!r}: values of type {type(value).__name__} are not "
        "supported by the bayesgmm file format (use numbers, strings, lists, tuples, dicts, "
        "numpy arrays, None or a numpy RandomState)"
    )


def _decode(value: Any, types: tuple[type, ...]) -> Any:
    """Inverse of :func:`_encode`; dataclasses are rebuilt only from ``types``."""
    if isinstance(value, list):
        return [_decode(v, types) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or next(iter(value)) not in _TAGS:
        return {k: _decode(v, types) for k, v in value.items()}
    ((tag, body),) = value.items()
    if tag == "__tuple__":
        return tuple(_decode(v, types) for v in body)
    if tag == "__dict__":
        return {_decode(k, types): _decode(v, types) for k, v in body}
    if tag == "__scalar__":
        dtype, text = body
        if dtype == "float":
            return float(text)
        return np.dtype(dtype).type(_scalar(text, np.dtype(dtype)))
    if tag == "__ndarray__":
        dtype, shape, flat = body
        dtype = np.dtype(dtype)
        if dtype.kind == "O":
            out = np.empty(len(flat), dtype=object)
            out[:] = [_decode(v, types) for v in flat]
            return out.reshape(shape)
        if dtype.kind == "f":
            flat = [float(v) for v in flat]
        return np.array(flat, dtype=dtype).reshape(shape)
    if tag == "__RandomState__":
        state = np.random.RandomState()
        state.set_state(tuple(_decode(body, types)))
        return state
    name, fields = body
    by_name = {t.__name__: t for t in types}
    if name not in by_name:
        raise ValueError(f"the file holds a {name} object, which this estimator does not use")
    return by_name[name](**{k: _decode(v, types) for k, v in fields.items()})


def _scalar(text: str, dtype: np.dtype):
    if dtype.kind == "b":
        return text == "True"
    if dtype.kind == "f":
        return float(text)
    return int(text)
