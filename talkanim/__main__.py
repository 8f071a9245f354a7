"""`python -m talkanim ...` (also what `torchrun -m talkanim train ...` runs)."""

from talkanim.cli import main

if __name__ == "__main__":
    main()
