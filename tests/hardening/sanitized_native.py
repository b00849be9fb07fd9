"""A pytest plugin for `make sanitize`: puts the sanitized build of the C extension (the file
$EDGECOMPLETE_SANITIZED_NATIVE names) in place of edgecomplete._native before anything imports
it, so the tests run the package as it is with the sanitized C core under it."""

import importlib.util
import os
import sys

path = os.environ["EDGECOMPLETE_SANITIZED_NATIVE"]
spec = importlib.util.spec_from_file_location("edgecomplete._native", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.modules["edgecomplete._native"] = module
