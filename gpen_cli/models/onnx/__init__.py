"""GPEN and ParseNet as ONNX graphs: the exportable formulation (graph), writing and reading
the file with its metadata (onnx_file), ONNX Runtime sessions (runtime), the export checked
against PyTorch (networks), and checked exports kept between runs (cache). Used by
`gpen export` and by `runtime="onnxruntime"`."""
