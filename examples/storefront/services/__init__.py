"""The storefront's services, composed from the building blocks of :mod:`storefront`.

One module per service: :mod:`.catalog` and :mod:`.orders` are FastAPI apps (each its own ASGI
app, as each would be its own ECS service), :mod:`.fulfillment`, :mod:`.notifications` and
:mod:`.analytics` are SQS workers built on :class:`storefront.messaging.consumer.Consumer`
(analytics also serves a small FastAPI dashboard). Each module composes existing mechanisms and
adds none of its own; :func:`.worker.run` runs a worker until SIGTERM.
"""
