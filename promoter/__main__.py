from promoter.frontends.cli import main

main()
