from gpen_cli.cli import main

main()
