"""One file per schema revision; `imhi_bench.store.engine.HEAD_REVISION` names the newest."""
