"""All services of one running app, built on one database and one clock."""

from __future__ import annotations

from ems_connector.clock import Clock
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWorkFactory
from ems_connector.services.customers import CustomerService
from ems_connector.services.offers import OfferService
from ems_connector.services.operations import OperationService
from ems_connector.services.payment_methods import PaymentMethodService
from ems_connector.services.payments import PaymentService
from ems_connector.services.publishers import PublisherService
from ems_connector.services.renewals_due import RenewalsDue
from ems_connector.services.subscriptions import SubscriptionService
from ems_connector.services.switches import SwitchService
from ems_connector.services.webhooks import WebhookService


class Services:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        uow = UnitOfWorkFactory(db, clock)
        self.uow = uow
        self.publishers = PublisherService(db, clock)
        self.offers = OfferService(db, uow)
        self.payment_methods = PaymentMethodService(db, uow)
        self.customers = CustomerService(db, uow)
        self.subscriptions = SubscriptionService(db, uow)
        self.payments = PaymentService(db, uow)
        self.switches = SwitchService(db, uow)
        self.webhooks = WebhookService(db, uow, clock)
        self.renewals_due = RenewalsDue(db, uow)
        self.operations = OperationService(db)
