"""What importing ``lib`` does besides defining modules: one warnings filter."""


def test_importing_lib_silences_only_the_ipywidgets_warning():
    import importlib
    import warnings

    import lib

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.reload(lib)  # installs its filter in front of "always"
        warnings.warn("IProgress not found. Please update jupyter and ipywidgets.", UserWarning)
        warnings.warn("any other warning", UserWarning)
    assert [str(w.message) for w in caught] == ["any other warning"]
