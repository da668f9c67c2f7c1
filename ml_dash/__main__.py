from ml_dash.cli import main

raise SystemExit(main())
