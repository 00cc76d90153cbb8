"""The Anthropic-compatible dialect: `POST /v1/messages` and `/v1/messages/count_tokens`
(spec 4.2, ANT-01…ANT-09).

    request.py   an Anthropic Messages body → the internal `ChatRequest` (validation, blocks)
    response.py  the folded native answer → one Anthropic `Message` object
    stream.py    the native chat stream → Anthropic's server-sent events, block by block
    errors.py    Anthropic's error object, its ids, and the status → error type mapping
    routes.py    the two routes

Everything is a translation around `Inference.chat`: nothing here runs a model itself.
"""
