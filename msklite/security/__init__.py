"""MSK's security, locally: the listeners a broker offers (listeners.py), the TLS material of a
local CA (tls.py), the SASL mechanisms (mechanism.py: what a mechanism's server does; scram.py:
SCRAM; iam.py: AWS_MSK_IAM and OAUTHBEARER-IAM) and the per-connection authentication state that
sits before dispatch (authenticator.py).

It sits above the broker core in the import layers: the broker assembly (brokers.py) asks it
for a listener's TLS context and for one authenticator per connection; the connection drives
that authenticator through a structural protocol of its own (connection.Authenticator), and
handlers never check credentials themselves.
"""
