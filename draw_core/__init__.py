"""DRAW Studio core: the DRAW model (Gregor et al. 2015, arXiv:1502.04623) and everything around it.

No Streamlit import anywhere in this package: the app, the CLIs and the tests all call into it.
"""
