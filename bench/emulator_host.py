"""Child process: serve a Kyma emulator until stdin closes; the first stdout line is its root URL.

The emulator runs in its own process so that neither the benchmark's client nor the server
under test shares a GIL with it; tying its life to a pipe means it never outlives the benchmark.
"""

import sys

from kyma_mcp.emulator import running_emulator


def main() -> None:
    with running_emulator() as emulator:
        print(emulator.root_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
