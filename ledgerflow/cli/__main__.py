from ledgerflow.cli import main

main()
