"""The whole suite: every demo under spaces/ as a tab of one Gradio app.

Run `python app.py` (or `make demo`); GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are respected.
No model loads at start-up: each loads from the Hub on first use and is shared by all tabs.
"""

from shared import serve
from shared.suite import build_suite

demo = build_suite()

if __name__ == "__main__":
    serve.launch(demo)
