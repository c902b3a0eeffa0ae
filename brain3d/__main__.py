from brain3d.cli import entry

entry()
