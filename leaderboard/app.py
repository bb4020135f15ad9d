"""The IMHI leaderboard (Streamlit): `streamlit run leaderboard/app.py` with the store in
$IMHI_DB_URL, or `imhi-bench leaderboard [--db URL]`.  The app lives in the package
(`imhi_bench.leaderboard.app`) so an installed imhi-bench can serve it too."""

from imhi_bench.leaderboard.app import main

main()
