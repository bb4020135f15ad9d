"""One file per schema revision; `store.HEAD_REVISION` names the newest."""
