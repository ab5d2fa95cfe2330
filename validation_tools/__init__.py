"""The validation tools: balance, leakage audit, baseline classifiers, quality metrics and the report.

They check what the builders made; nothing in `cxr_dataset`, `generator` or `builders` imports them.
Heavy dependencies (matplotlib, umap-learn, grad-cam, scikit-learn, scipy) come with the `validation` extra.
"""
