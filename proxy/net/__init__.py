"""The only code that awaits on sockets: listeners, downstream, upstream, pools."""
