"""pytest configuration shared by the unit tests and nbval.

nbval compares stored notebook outputs; these output types are skipped because they are noisy
(stderr carries progress bars and absolute paths) or cannot be compared as text.
"""


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += (
            "stderr",
            "text/html",
            "application/javascript",
            "application/vnd.jupyter.widget-view+json",
            "image/png",
            "image/svg+xml",
        )
