"""The screenshots of the page to try a model, for the docs (docs/images/serve-page*.png).

    python benchmarks/page_screenshot.py --tagger ewt.safetensors --forecaster etth1.safetensors
        [--out docs/images/serve-page.png] [--forecast-out docs/images/serve-page-forecast.png]

Serves the recipes' models (docs/results/tagging-ewt.md, docs/results/etth1.md) with `zoo
serve` as a user types it, opens the page in headless chromium (Debian's chromium and
chromedriver through selenium, as tests/runtime/test_page.py, whose helpers drive the page
here), tags a sentence and forecasts the ETTh1 test part's last window, and saves each view.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.runtime.test_page import ask, chrome  # noqa: E402
from tests.servers import Server, zoo_serve  # noqa: E402

SENTENCE = "The quick brown fox jumped over the lazy dog near the river bank ."


def last_test_window(model: str, data: Path) -> str:
    """The ETTh1 test part's last window of the model's input length (OT values)."""
    from zoo.core.modelfile import read_info

    state = read_info(model)["data_state"]
    length, column = int(state["input_length"]), state["targets"][0]
    with open(data / "ett" / "ETTh1.csv", newline="", encoding="utf-8") as f:
        values = [row[column] for row in csv.DictReader(f)][: 8640 + 2880 + 2880]
    return " ".join(f"{float(v):.2f}" for v in values[-length - 24 : -24])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tagger", required=True, help="the EWT tagger recipe's model")
    p.add_argument("--forecaster", required=True, help="the ETTh1 recipe's model")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "serve-page.png")
    p.add_argument(
        "--forecast-out", type=Path, default=REPO / "docs" / "images" / "serve-page-forecast.png"
    )
    args = p.parse_args()
    names = [Path(args.tagger).stem, Path(args.forecaster).stem]
    with Server(zoo_serve(args.tagger, args.forecaster)) as server:
        driver = chrome(width=1000, height=860)
        try:
            ask(driver, server.url, names[0], SENTENCE)
            driver.save_screenshot(str(args.out))
            ask(driver, server.url, names[1], last_test_window(args.forecaster, args.data))
            driver.execute_script("document.getElementById('answer').scrollIntoView()")
            driver.save_screenshot(str(args.forecast_out))
        finally:
            driver.quit()
    print(f"wrote {args.out} and {args.forecast_out}")


if __name__ == "__main__":
    main()
