"""`python -m simulator`: serve the local Gemini API until SIGTERM or SIGINT."""

from simulator.server import main

main()
