from brain3d.cli import entry

if __name__ == "__main__":
    entry()
