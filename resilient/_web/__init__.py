"""What the ASGI and WSGI glue share: errors as problem details, and the route lint.

Framework-free: plain functions over exceptions, headers and route objects, so
``resilient.asgi`` and ``resilient.wsgi`` answer alike.
"""
