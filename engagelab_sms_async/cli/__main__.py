"""``python -m engagelab_sms_async.cli``: the same as the ``engagelab-sms`` command."""

from . import main

main()
