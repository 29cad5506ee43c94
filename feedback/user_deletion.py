"""Deleting an account (Django admin): its leases go back to the queue first. The cascade would
delete them and leave their tasks' slots taken, and a task whose slots are all taken is served
to nobody, so it would never be finished. (An account with judgments cannot be deleted.)"""

from django.conf import settings
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from feedback.services.queue import release_leases


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL)
def before_user_deletion(sender, instance, **kwargs) -> None:
    release_leases(annotator_id=instance.pk)
