"""Access control: who the caller is (htpasswd, bearer tokens) and what they may do (policy).

Pure Python on purpose: the HTTP layer asks questions through `Authorizer` and turns the
answers into responses, so the rules here are testable without a server.
"""
