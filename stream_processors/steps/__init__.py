"""One module per processing step: validate -> dedupe -> join. Pure logic over stores.

Steps know nothing of Faust: their state lives in ``MutableMapping`` stores that the Faust
wiring (:mod:`meterline.stream_processors.pipeline`) backs with changelogged tables, and tests back
with plain dicts.
"""
