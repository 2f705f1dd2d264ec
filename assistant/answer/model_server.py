"""llama.cpp's OpenAI-compatible server, with the model loaded as the assistant loads it.

    python -m assistant.answer.model_server --model … --model_alias … [options of llama_cpp.server]

The options are those of ``python -m llama_cpp.server``. Where llama.cpp was built with Intel AMX,
the weights are loaded without its extra buffers (``llm.safe_llama_loading``): with them, the
server crashes on its first request.
"""

from __future__ import annotations

import runpy

from assistant.answer.llm import safe_llama_loading


def main() -> None:
    with safe_llama_loading():
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
