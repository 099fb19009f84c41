from alpagasus.main import main

main()
