"""Fit the "chat-single-turn" length distribution and write `traces/chat_params.py`.

The source is the Azure LLM inference trace 2023, conversation service (Patel et al.,
"Splitwise", ISCA 2024; Azure Public Dataset, CC-BY-4.0): 19,366 real chat requests with their
prompt (`ContextTokens`) and reply (`GeneratedTokens`) lengths. Each row is one request: a
prompt and the one reply generated for it, which is what the FastServe artifact and vLLM's
serving benchmark replay. The project may not ship the trace, so it ships the fit only, made
with the same method as `traces/fit_sharegpt.py` (marginal quantile tables on a grid of normal
scores, joined by a Gaussian copula). Run once with

    python -m traces.fit_chat ../shared/data/traces/azure_2023_conv.csv -o traces/chat_params.py

`tests/traces/test_traces_real.py` re-fits and checks that the shipped numbers are reproduced.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from traces.fit_sharegpt import SHARED_PREFIX, fit, params_body, write_module


def render(fitted: dict, source_name: str) -> str:
    return f'''"""Fitted parameters of the "chat-single-turn" length distribution. GENERATED: do not edit.

Made by (see traces/fit_chat.py for the source and the method):

    python -m traces.fit_chat {source_name} \\
        -o traces/chat_params.py

Quantile tables of prompt and reply tokens on a grid of normal scores, and the normal-score
correlation between them (a Gaussian copula), fitted to {fitted["num_rows"]:,} requests of the
Azure LLM inference trace 2023, conversation service (Patel et al., ISCA 2024; CC-BY-4.0).
The trace itself is not shipped.
"""
''' + params_body(fitted)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", help="Azure trace CSV with TIMESTAMP,ContextTokens,GeneratedTokens")
    parser.add_argument("-o", "--out", help="module to write (default: stdout)")
    args = parser.parse_args(argv)
    write_module(render(fit(args.trace, fmt="azure"), f"{SHARED_PREFIX}{Path(args.trace).name}"), args.out)


if __name__ == "__main__":
    main()
