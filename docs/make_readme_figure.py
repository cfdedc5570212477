"""Write docs/_static/iris_nested.png, the README's figure, from a real run of the second example.

    python docs/make_readme_figure.py

Runs examples/second_example.py at its full size (iris, nested 5 x 5, 10 values of C) in a
temporary directory and saves ``res.plot()``. The README is read where nothing is built (a
repository page), so its figure is a file; rerun this when the plot changes.
"""
import subprocess
import sys
import tempfile
from pathlib import Path

from mempamal import load_results

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "second_example"
        subprocess.run([sys.executable, str(ROOT / "examples" / "second_example.py"), str(workdir)], check=True,
                       stdout=subprocess.DEVNULL)
        target = ROOT / "docs" / "_static" / "iris_nested.png"
        tmp_png = target.with_name(".iris_nested.png.tmp.png")
        load_results(workdir).plot().savefig(tmp_png, dpi=72)
        tmp_png.replace(target)
        print(target)
