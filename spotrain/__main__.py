from spotrain.launcher.cli.app import main

main()
