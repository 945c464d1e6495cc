"Model backends: one module per family (SAM, CLIP, SAM 2.1, SAM 3), built by name through `segwl.registry`."
