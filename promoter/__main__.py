from promoter._cli import main

main()
