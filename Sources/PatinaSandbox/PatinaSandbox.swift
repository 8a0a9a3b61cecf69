// Module PatinaSandbox.
