"""Regenerate docs/configuration.md, the example config and docs/schema/*.json from the code."""

from edge_agent.devtools.docs import generated_files, write_all

if __name__ == "__main__":
    changed = write_all()
    for path in generated_files():
        print(("updated " if path in changed else "up to date ") + str(path))
