-- Baseline: the platform's schema as the release that introduced migrations has it. Frozen: never edit;
-- a change is a new revision. Written so it runs on an empty database and on one made by the releases before
-- migrations (which created their tables on first use): what exists is kept with its rows, what is missing
-- is created, what older releases left different is repaired.

-- Schemas and tables (IF NOT EXISTS: an existing table is left as it is, with its rows)
CREATE SCHEMA IF NOT EXISTS erp_cache;
CREATE SCHEMA IF NOT EXISTS automation;
CREATE SCHEMA IF NOT EXISTS warehouse;
CREATE SCHEMA IF NOT EXISTS exports;
CREATE TABLE IF NOT EXISTS automation.audit_log (
	id BIGSERIAL NOT NULL, 
	at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	actor TEXT, 
	instance TEXT, 
	subject TEXT, 
	action TEXT NOT NULL, 
	outbox_key TEXT, 
	detail JSONB DEFAULT '{}'::jsonb NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS automation.edi_control_numbers (
	partner_id TEXT NOT NULL, 
	kind TEXT NOT NULL, 
	last_value BIGINT NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (partner_id, kind), 
	CONSTRAINT edi_control_numbers_kind_check CHECK (kind IN ('ISA', 'GS', 'ST')), 
	CONSTRAINT edi_control_numbers_last_value_check CHECK (last_value BETWEEN 1 AND 999999999)
);
CREATE TABLE IF NOT EXISTS automation.edi_files (
	id BIGSERIAL NOT NULL, 
	partner TEXT NOT NULL, 
	direction TEXT NOT NULL, 
	file_name TEXT NOT NULL, 
	content_hash TEXT NOT NULL, 
	content BYTEA, 
	state TEXT NOT NULL, 
	reason TEXT, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	size BIGINT, 
	PRIMARY KEY (id), 
	UNIQUE (partner, direction, file_name, content_hash), 
	CONSTRAINT edi_files_direction_check CHECK (direction IN ('in', 'out')), 
	CONSTRAINT edi_files_state_check CHECK (state IN ('received', 'processed', 'quarantined', 'sent'))
);
CREATE TABLE IF NOT EXISTS automation.fulfilments (
	instance TEXT NOT NULL, 
	sale_id TEXT NOT NULL, 
	seq INTEGER NOT NULL, 
	location TEXT NOT NULL, 
	partner TEXT, 
	depositor_order TEXT NOT NULL, 
	task_id TEXT, 
	edi_file_id BIGINT, 
	lines JSONB NOT NULL, 
	state TEXT NOT NULL, 
	shipments JSONB DEFAULT '[]'::jsonb NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	round INTEGER DEFAULT 1 NOT NULL, 
	PRIMARY KEY (instance, sale_id, seq), 
	CONSTRAINT fulfilments_state_check CHECK (state IN ('planned', 'created', 'sent', 'acknowledged', 'partially_shipped', 'shipped', 'short_shipped', 'handed_over', 'done', 'given_up', 'cancelled'))
);
CREATE TABLE IF NOT EXISTS automation.inbound_files (
	id BIGSERIAL NOT NULL, 
	partner TEXT NOT NULL, 
	name TEXT NOT NULL, 
	display_name TEXT NOT NULL, 
	listed_size BIGINT NOT NULL, 
	listed_modified TIMESTAMP WITH TIME ZONE NOT NULL, 
	state TEXT NOT NULL, 
	reason TEXT, 
	attempts INTEGER DEFAULT 0 NOT NULL, 
	next_attempt_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	lease_until TIMESTAMP WITH TIME ZONE, 
	last_error TEXT, 
	file_id BIGINT, 
	content_hash TEXT, 
	archived_at TIMESTAMP WITH TIME ZONE, 
	notified_at TIMESTAMP WITH TIME ZONE, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (partner, name, listed_size, listed_modified), 
	CONSTRAINT inbound_files_state_check CHECK (state IN ('taken', 'failed', 'incomplete', 'processed', 'duplicate', 'quarantined', 'unreadable', 'dismissed', 'superseded'))
);
CREATE TABLE IF NOT EXISTS automation.notifications (
	id BIGSERIAL NOT NULL, 
	key TEXT NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	subject TEXT NOT NULL, 
	body TEXT NOT NULL, 
	channels TEXT[] DEFAULT '{}'::text[] NOT NULL, 
	sent_at TIMESTAMP WITH TIME ZONE, 
	error TEXT, 
	attempts INTEGER DEFAULT 0 NOT NULL, 
	attempted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	UNIQUE (key)
);
CREATE TABLE IF NOT EXISTS automation.outbox (
	id BIGSERIAL NOT NULL, 
	key TEXT NOT NULL, 
	kind TEXT NOT NULL, 
	instance TEXT, 
	subject TEXT, 
	payload JSONB DEFAULT '{}'::jsonb NOT NULL, 
	state TEXT DEFAULT 'pending' NOT NULL, 
	attempts INTEGER DEFAULT 0 NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	next_attempt_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	lease_until TIMESTAMP WITH TIME ZONE, 
	last_error TEXT, 
	result JSONB, 
	done_at TIMESTAMP WITH TIME ZONE, 
	requeued_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	CONSTRAINT outbox_state_check CHECK (state IN ('pending', 'running', 'failed', 'done', 'given_up')), 
	UNIQUE (key)
);
CREATE TABLE IF NOT EXISTS automation.relocations (
	instance TEXT NOT NULL, 
	sale_id TEXT NOT NULL, 
	target_location TEXT NOT NULL, 
	target_location_id TEXT NOT NULL, 
	source_location TEXT NOT NULL, 
	order_number TEXT DEFAULT '' NOT NULL, 
	state TEXT NOT NULL, 
	plan_steps TEXT[] NOT NULL, 
	steps_done TEXT[] DEFAULT '{}'::text[] NOT NULL, 
	snapshot JSONB NOT NULL, 
	details JSONB DEFAULT '{}'::jsonb NOT NULL, 
	runs INTEGER DEFAULT 1 NOT NULL, 
	last_error TEXT, 
	started_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	finished_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, sale_id, target_location), 
	CONSTRAINT relocations_state_check CHECK (state IN ('running', 'failed', 'done'))
);
CREATE TABLE IF NOT EXISTS automation.sales (
	instance TEXT NOT NULL, 
	sale_id TEXT NOT NULL, 
	order_number TEXT DEFAULT '' NOT NULL, 
	order_date DATE, 
	sale_updated TEXT DEFAULT '' NOT NULL, 
	state TEXT NOT NULL, 
	reason TEXT, 
	plan JSONB, 
	snapshot JSONB, 
	store_key TEXT, 
	store_order_id TEXT, 
	backordered JSONB DEFAULT '[]'::jsonb NOT NULL, 
	rounds INTEGER DEFAULT 0 NOT NULL, 
	admitted_by TEXT NOT NULL, 
	attempts INTEGER DEFAULT 0 NOT NULL, 
	next_attempt_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	lease_until TIMESTAMP WITH TIME ZONE, 
	last_error TEXT, 
	stock_checked_at TIMESTAMP WITH TIME ZONE, 
	waiting_since TIMESTAMP WITH TIME ZONE, 
	waiting_notified_at TIMESTAMP WITH TIME ZONE, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (instance, sale_id), 
	CONSTRAINT sales_state_check CHECK (state IN ('new', 'waiting_for_stock', 'held', 'planned', 'fulfilments_created', 'sent_to_3pl', 'acknowledged', 'partially_shipped', 'shipped', 'done', 'given_up', 'cancelled'))
);
CREATE TABLE IF NOT EXISTS automation.settings (
	key TEXT, 
	value JSONB NOT NULL, 
	set_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	set_by TEXT, 
	PRIMARY KEY (key)
);
CREATE TABLE IF NOT EXISTS automation.sscc_serials (
	company_prefix TEXT NOT NULL, 
	extension_digit INTEGER NOT NULL, 
	last_serial BIGINT NOT NULL, 
	PRIMARY KEY (company_prefix, extension_digit)
);
CREATE TABLE IF NOT EXISTS automation.state_history (
	id BIGSERIAL NOT NULL, 
	at TIMESTAMP WITH TIME ZONE DEFAULT clock_timestamp() NOT NULL, 
	kind TEXT NOT NULL, 
	instance TEXT, 
	subject TEXT NOT NULL, 
	from_state TEXT, 
	to_state TEXT NOT NULL, 
	cause TEXT NOT NULL, 
	actor TEXT, 
	PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS erp_cache.api_call_log (
	key_id TEXT NOT NULL, 
	called_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE TABLE IF NOT EXISTS erp_cache.carriers (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.completeness (
	instance TEXT NOT NULL, 
	entity TEXT NOT NULL, 
	checked_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	api_total INTEGER, 
	cache_count INTEGER NOT NULL, 
	passed BOOLEAN NOT NULL, 
	problems JSONB DEFAULT '[]'::jsonb NOT NULL, 
	PRIMARY KEY (instance, entity)
);
CREATE TABLE IF NOT EXISTS erp_cache.customers (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.finished_goods (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.locations (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.me (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.price_tiers (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.product_availability (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.products (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.purchases (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.sales (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.stock_adjustments (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.stock_transfers (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.suppliers (
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	payload JSONB NOT NULL, 
	payload_hash TEXT NOT NULL, 
	list_hash TEXT, 
	synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	verified_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	deleted_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.sync_pending (
	instance TEXT NOT NULL, 
	entity TEXT NOT NULL, 
	id TEXT NOT NULL, 
	list_modified TIMESTAMP WITH TIME ZONE, 
	list_hash TEXT, 
	PRIMARY KEY (instance, entity, id)
);
CREATE TABLE IF NOT EXISTS erp_cache.sync_state (
	instance TEXT NOT NULL, 
	entity TEXT NOT NULL, 
	watermark TIMESTAMP WITH TIME ZONE, 
	sweep_position INTEGER DEFAULT 0 NOT NULL, 
	last_sync_at TIMESTAMP WITH TIME ZONE, 
	last_mode TEXT, 
	last_full_at TIMESTAMP WITH TIME ZONE, 
	last_result JSONB, 
	PRIMARY KEY (instance, entity)
);
CREATE TABLE IF NOT EXISTS exports.zoho_row (
	workspace_id TEXT NOT NULL, 
	view_id TEXT NOT NULL, 
	row_key TEXT NOT NULL, 
	row_hash BIGINT NOT NULL, 
	PRIMARY KEY (workspace_id, view_id, row_key)
);
CREATE TABLE IF NOT EXISTS exports.zoho_table (
	workspace_id TEXT NOT NULL, 
	view_id TEXT NOT NULL, 
	export_name TEXT NOT NULL, 
	zoho_name TEXT NOT NULL, 
	content_hash TEXT, 
	columns JSONB, 
	row_count BIGINT, 
	loaded_at TIMESTAMP WITH TIME ZONE, 
	verified_at TIMESTAMP WITH TIME ZONE, 
	verified_ok BOOLEAN, 
	PRIMARY KEY (workspace_id, view_id)
);
CREATE TABLE IF NOT EXISTS exports.zoho_units (
	id BIGSERIAL NOT NULL, 
	org_id TEXT NOT NULL, 
	spent_on DATE NOT NULL, 
	recorded_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	export_name TEXT NOT NULL, 
	import_type TEXT, 
	rows BIGINT NOT NULL, 
	units INTEGER NOT NULL, 
	status TEXT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS warehouse.build_state (
	table_name TEXT NOT NULL, 
	input_stamp TIMESTAMP WITH TIME ZONE, 
	fx_stamp TIMESTAMP WITH TIME ZONE, 
	reporting_currency TEXT, 
	last_mode TEXT, 
	last_built_at TIMESTAMP WITH TIME ZONE, 
	last_result JSONB, 
	PRIMARY KEY (table_name)
);
CREATE TABLE IF NOT EXISTS warehouse.built_document (
	table_name TEXT NOT NULL, 
	instance TEXT NOT NULL, 
	id TEXT NOT NULL, 
	payload_hash TEXT NOT NULL, 
	modified_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (table_name, instance, id)
);
CREATE TABLE IF NOT EXISTS warehouse.conformed_product (
	conformed_product_key INTEGER GENERATED BY DEFAULT AS IDENTITY (START WITH 1), 
	sku TEXT NOT NULL, 
	PRIMARY KEY (conformed_product_key), 
	UNIQUE (sku)
);
CREATE TABLE IF NOT EXISTS warehouse.dim_customer (
	customer_key INTEGER GENERATED BY DEFAULT AS IDENTITY (START WITH 1), 
	instance_key INTEGER NOT NULL, 
	customer_id TEXT NOT NULL, 
	name TEXT, 
	currency TEXT, 
	status TEXT, 
	price_tier TEXT, 
	payment_term TEXT, 
	sales_representative TEXT, 
	country TEXT, 
	is_deleted BOOLEAN DEFAULT false NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (customer_key), 
	UNIQUE (instance_key, customer_id)
);
CREATE TABLE IF NOT EXISTS warehouse.dim_date (
	date_key INTEGER NOT NULL, 
	date DATE, 
	year INTEGER, 
	quarter INTEGER, 
	month INTEGER, 
	month_name TEXT, 
	year_month TEXT, 
	day INTEGER, 
	day_of_week INTEGER, 
	day_name TEXT, 
	iso_week INTEGER, 
	is_weekend BOOLEAN, 
	PRIMARY KEY (date_key), 
	UNIQUE (date)
);
CREATE TABLE IF NOT EXISTS warehouse.dim_instance (
	instance_key INTEGER GENERATED BY DEFAULT AS IDENTITY (START WITH 1), 
	instance TEXT NOT NULL, 
	company TEXT, 
	base_currency TEXT, 
	timezone TEXT, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (instance_key), 
	UNIQUE (instance)
);
CREATE TABLE IF NOT EXISTS warehouse.dim_location (
	location_key INTEGER GENERATED BY DEFAULT AS IDENTITY (START WITH 1), 
	instance_key INTEGER NOT NULL, 
	location_id TEXT NOT NULL, 
	name TEXT, 
	is_default BOOLEAN, 
	is_deprecated BOOLEAN, 
	city TEXT, 
	country TEXT, 
	is_deleted BOOLEAN DEFAULT false NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (location_key), 
	UNIQUE (instance_key, location_id)
);
CREATE TABLE IF NOT EXISTS warehouse.dim_product (
	product_key INTEGER GENERATED BY DEFAULT AS IDENTITY (START WITH 1), 
	instance_key INTEGER NOT NULL, 
	product_id TEXT NOT NULL, 
	conformed_product_key INTEGER NOT NULL, 
	sku TEXT, 
	name TEXT, 
	category TEXT, 
	brand TEXT, 
	product_type TEXT, 
	status TEXT, 
	uom TEXT, 
	barcode TEXT, 
	average_cost NUMERIC(18, 4), 
	is_deleted BOOLEAN DEFAULT false NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (product_key), 
	UNIQUE (instance_key, product_id)
);
CREATE TABLE IF NOT EXISTS warehouse.fact_credit_note_line (
	instance_key INTEGER NOT NULL, 
	sale_id TEXT NOT NULL, 
	credit_note_task_id TEXT NOT NULL, 
	line_number INTEGER NOT NULL, 
	credit_note_number TEXT, 
	credited_invoice_number TEXT, 
	credit_note_status TEXT, 
	sale_status TEXT, 
	is_voided BOOLEAN NOT NULL, 
	product_key INTEGER NOT NULL, 
	customer_key INTEGER NOT NULL, 
	location_key INTEGER NOT NULL, 
	credit_note_date DATE, 
	credit_note_date_key INTEGER NOT NULL, 
	sku TEXT, 
	quantity NUMERIC(18, 4) NOT NULL, 
	price NUMERIC(18, 4), 
	discount NUMERIC(9, 4), 
	currency TEXT, 
	amount NUMERIC(18, 4) NOT NULL, 
	tax NUMERIC(18, 4), 
	base_currency TEXT, 
	base_rate NUMERIC(24, 10), 
	base_rate_missing BOOLEAN NOT NULL, 
	amount_base NUMERIC(18, 4), 
	reporting_currency TEXT NOT NULL, 
	reporting_rate_currency TEXT, 
	reporting_rate NUMERIC(24, 10), 
	reporting_rate_date DATE, 
	amount_reporting NUMERIC(18, 4), 
	source_modified_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance_key, sale_id, credit_note_task_id, line_number)
);
CREATE TABLE IF NOT EXISTS warehouse.fact_invoice_line (
	instance_key INTEGER NOT NULL, 
	sale_id TEXT NOT NULL, 
	invoice_task_id TEXT NOT NULL, 
	line_number INTEGER NOT NULL, 
	invoice_number TEXT, 
	invoice_status TEXT, 
	sale_status TEXT, 
	is_voided BOOLEAN NOT NULL, 
	product_key INTEGER NOT NULL, 
	customer_key INTEGER NOT NULL, 
	location_key INTEGER NOT NULL, 
	invoice_date DATE, 
	invoice_date_key INTEGER NOT NULL, 
	due_date DATE, 
	sku TEXT, 
	quantity NUMERIC(18, 4) NOT NULL, 
	price NUMERIC(18, 4), 
	discount NUMERIC(9, 4), 
	currency TEXT, 
	amount NUMERIC(18, 4) NOT NULL, 
	tax NUMERIC(18, 4), 
	base_currency TEXT, 
	base_rate NUMERIC(24, 10), 
	base_rate_missing BOOLEAN NOT NULL, 
	amount_base NUMERIC(18, 4), 
	reporting_currency TEXT NOT NULL, 
	reporting_rate_currency TEXT, 
	reporting_rate NUMERIC(24, 10), 
	reporting_rate_date DATE, 
	amount_reporting NUMERIC(18, 4), 
	source_modified_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance_key, sale_id, invoice_task_id, line_number)
);
CREATE TABLE IF NOT EXISTS warehouse.fact_purchase_line (
	instance_key INTEGER NOT NULL, 
	purchase_id TEXT NOT NULL, 
	line_number INTEGER NOT NULL, 
	order_number TEXT, 
	status TEXT, 
	is_voided BOOLEAN NOT NULL, 
	supplier_id TEXT, 
	supplier_name TEXT, 
	product_key INTEGER NOT NULL, 
	location_key INTEGER NOT NULL, 
	order_date DATE, 
	order_date_key INTEGER NOT NULL, 
	required_by DATE, 
	sku TEXT, 
	quantity NUMERIC(18, 4) NOT NULL, 
	price NUMERIC(18, 4), 
	discount NUMERIC(9, 4), 
	currency TEXT, 
	amount NUMERIC(18, 4) NOT NULL, 
	tax NUMERIC(18, 4), 
	base_currency TEXT, 
	base_rate NUMERIC(24, 10), 
	base_rate_missing BOOLEAN NOT NULL, 
	amount_base NUMERIC(18, 4), 
	reporting_currency TEXT NOT NULL, 
	reporting_rate_currency TEXT, 
	reporting_rate NUMERIC(24, 10), 
	reporting_rate_date DATE, 
	amount_reporting NUMERIC(18, 4), 
	source_modified_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance_key, purchase_id, line_number)
);
CREATE TABLE IF NOT EXISTS warehouse.fact_sale_line (
	instance_key INTEGER NOT NULL, 
	sale_id TEXT NOT NULL, 
	line_number INTEGER NOT NULL, 
	order_number TEXT, 
	status TEXT, 
	order_status TEXT, 
	is_voided BOOLEAN NOT NULL, 
	product_key INTEGER NOT NULL, 
	customer_key INTEGER NOT NULL, 
	location_key INTEGER NOT NULL, 
	order_date DATE, 
	order_date_key INTEGER NOT NULL, 
	ship_date DATE, 
	ship_date_key INTEGER, 
	sku TEXT, 
	quantity NUMERIC(18, 4) NOT NULL, 
	price NUMERIC(18, 4), 
	discount NUMERIC(9, 4), 
	currency TEXT, 
	amount NUMERIC(18, 4) NOT NULL, 
	tax NUMERIC(18, 4), 
	base_currency TEXT, 
	base_rate NUMERIC(24, 10), 
	base_rate_missing BOOLEAN NOT NULL, 
	amount_base NUMERIC(18, 4), 
	reporting_currency TEXT NOT NULL, 
	reporting_rate_currency TEXT, 
	reporting_rate NUMERIC(24, 10), 
	reporting_rate_date DATE, 
	amount_reporting NUMERIC(18, 4), 
	source_modified_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance_key, sale_id, line_number)
);
CREATE TABLE IF NOT EXISTS warehouse.fact_stock (
	instance_key INTEGER NOT NULL, 
	location_name TEXT NOT NULL, 
	sku TEXT NOT NULL, 
	product_key INTEGER NOT NULL, 
	location_key INTEGER NOT NULL, 
	on_hand NUMERIC(18, 4) NOT NULL, 
	allocated NUMERIC(18, 4) NOT NULL, 
	available NUMERIC(18, 4) NOT NULL, 
	on_order NUMERIC(18, 4) NOT NULL, 
	in_transit NUMERIC(18, 4) NOT NULL, 
	stock_value_base NUMERIC(18, 4), 
	snapshot_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (instance_key, location_name, sku)
);
CREATE TABLE IF NOT EXISTS warehouse.fx_rate (
	rate_date DATE NOT NULL, 
	currency TEXT NOT NULL, 
	per_anchor NUMERIC(24, 10) NOT NULL, 
	anchor TEXT NOT NULL, 
	source TEXT NOT NULL, 
	loaded_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (currency, rate_date)
);
CREATE TABLE IF NOT EXISTS warehouse.fx_rate_daily (
	reporting_currency TEXT NOT NULL, 
	on_date DATE NOT NULL, 
	currency TEXT NOT NULL, 
	rate NUMERIC(24, 10) NOT NULL, 
	rate_date DATE NOT NULL, 
	triangulated BOOLEAN NOT NULL, 
	changed_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (reporting_currency, on_date, currency)
);
CREATE TABLE IF NOT EXISTS automation.edi_file_parts (
	file_id BIGINT NOT NULL, 
	part INTEGER NOT NULL, 
	data BYTEA NOT NULL, 
	PRIMARY KEY (file_id, part), 
	FOREIGN KEY(file_id) REFERENCES automation.edi_files (id)
);
CREATE TABLE IF NOT EXISTS automation.edi_interchanges (
	id BIGSERIAL NOT NULL, 
	partner TEXT NOT NULL, 
	direction TEXT NOT NULL, 
	file_id BIGINT, 
	interchange_control TEXT NOT NULL, 
	group_control TEXT NOT NULL, 
	functional_id TEXT NOT NULL, 
	set_ids TEXT[] DEFAULT '{}'::text[] NOT NULL, 
	set_count INTEGER DEFAULT 0 NOT NULL, 
	state TEXT NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	ack_due_at TIMESTAMP WITH TIME ZONE, 
	acked_at TIMESTAMP WITH TIME ZONE, 
	ack_detail JSONB, 
	overdue_notified_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	UNIQUE (partner, direction, interchange_control, group_control), 
	FOREIGN KEY(file_id) REFERENCES automation.edi_files (id), 
	CONSTRAINT edi_interchanges_direction_check CHECK (direction IN ('in', 'out')), 
	CONSTRAINT edi_interchanges_state_check CHECK (state IN ('awaiting_ack', 'accepted', 'accepted_with_errors', 'partially_accepted', 'rejected', 'received', 'no_ack_expected'))
);
CREATE TABLE IF NOT EXISTS automation.partner_documents (
	partner TEXT NOT NULL, 
	set_id TEXT NOT NULL, 
	reference TEXT NOT NULL, 
	instance TEXT, 
	sale_id TEXT, 
	po_number TEXT, 
	file_id BIGINT, 
	outbox_key TEXT, 
	state TEXT NOT NULL, 
	reason TEXT, 
	detail JSONB DEFAULT '{}'::jsonb NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (partner, set_id, reference), 
	FOREIGN KEY(file_id) REFERENCES automation.edi_files (id), 
	CONSTRAINT partner_documents_set_id_check CHECK (set_id IN ('855', '856', '810', '846')), 
	CONSTRAINT partner_documents_state_check CHECK (state IN ('queued', 'failed'))
);
CREATE TABLE IF NOT EXISTS automation.partner_orders (
	partner TEXT NOT NULL, 
	po_number TEXT NOT NULL, 
	instance TEXT NOT NULL, 
	sale_id TEXT, 
	sale_order_number TEXT, 
	state TEXT NOT NULL, 
	decisions JSONB DEFAULT '[]'::jsonb NOT NULL, 
	problems JSONB DEFAULT '[]'::jsonb NOT NULL, 
	file_id BIGINT, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (partner, po_number), 
	FOREIGN KEY(file_id) REFERENCES automation.edi_files (id), 
	CONSTRAINT partner_orders_state_check CHECK (state IN ('pending', 'created', 'acknowledged', 'rejected', 'adopted'))
);
CREATE TABLE IF NOT EXISTS automation.shipments (
	id BIGSERIAL NOT NULL, 
	instance TEXT NOT NULL, 
	sale_id TEXT NOT NULL, 
	seq INTEGER NOT NULL, 
	shipment_key TEXT NOT NULL, 
	partner TEXT, 
	file_id BIGINT, 
	ship_date TEXT DEFAULT '' NOT NULL, 
	carrier TEXT DEFAULT '' NOT NULL, 
	tracking_number TEXT DEFAULT '' NOT NULL, 
	tracking_url TEXT DEFAULT '' NOT NULL, 
	lines JSONB NOT NULL, 
	final BOOLEAN DEFAULT false NOT NULL, 
	state TEXT NOT NULL, 
	reason TEXT, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT shipments_state_check CHECK (state IN ('recorded', 'shipped_in_cin7', 'tracking_posted', 'no_tracking_needed', 'given_up')), 
	FOREIGN KEY(instance, sale_id, seq) REFERENCES automation.fulfilments (instance, sale_id, seq), 
	UNIQUE (shipment_key)
);
-- Tables made by releases before this one may lack what later releases added (the code then repaired
-- them on every start); repaired here once, so every older database ends at the same baseline.
ALTER TABLE automation.fulfilments ADD COLUMN IF NOT EXISTS round integer NOT NULL DEFAULT 1;
-- Order numbers repeat across Cin7 accounts: the depositor order is unique per instance, not overall.
ALTER TABLE automation.fulfilments DROP CONSTRAINT IF EXISTS fulfilments_depositor_order_key;
ALTER TABLE automation.fulfilments DROP CONSTRAINT IF EXISTS fulfilments_state_check;
ALTER TABLE automation.fulfilments ADD CONSTRAINT fulfilments_state_check CHECK (state IN ('planned', 'created', 'sent', 'acknowledged', 'partially_shipped', 'shipped', 'short_shipped', 'handed_over', 'done', 'given_up', 'cancelled'));
-- Files are kept in parts since a later release; rows stored before keep their content.
ALTER TABLE automation.edi_files ALTER COLUMN content DROP NOT NULL;
ALTER TABLE automation.edi_files ADD COLUMN IF NOT EXISTS size bigint;

-- Indexes
CREATE INDEX IF NOT EXISTS audit_log_outbox_key_idx ON automation.audit_log (outbox_key) WHERE outbox_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_log_subject_idx ON automation.audit_log (instance, subject, at);
CREATE UNIQUE INDEX IF NOT EXISTS fulfilments_depositor_order ON automation.fulfilments (instance, depositor_order);
CREATE INDEX IF NOT EXISTS fulfilments_open ON automation.fulfilments (instance, location) WHERE state IN ('planned', 'created', 'sent');
CREATE INDEX IF NOT EXISTS inbound_files_open ON automation.inbound_files (partner, state) WHERE state NOT IN ('processed', 'duplicate', 'dismissed', 'superseded') OR archived_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_due_idx ON automation.outbox (next_attempt_at) WHERE state IN ('pending', 'failed');
CREATE INDEX IF NOT EXISTS outbox_given_up_idx ON automation.outbox (id) WHERE state = 'given_up';
CREATE INDEX IF NOT EXISTS outbox_lease_idx ON automation.outbox (lease_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS outbox_subject_idx ON automation.outbox (instance, subject);
CREATE INDEX IF NOT EXISTS relocations_open ON automation.relocations (instance, sale_id) WHERE state <> 'done';
CREATE INDEX IF NOT EXISTS sales_open ON automation.sales (state) WHERE state NOT IN ('done', 'cancelled');
CREATE INDEX IF NOT EXISTS state_history_subject ON automation.state_history (kind, instance, subject, id);
CREATE INDEX IF NOT EXISTS api_call_log_key_time ON erp_cache.api_call_log (key_id, called_at);
CREATE INDEX IF NOT EXISTS carriers_modified ON erp_cache.carriers (instance, modified_at);
CREATE INDEX IF NOT EXISTS carriers_synced ON erp_cache.carriers (synced_at);
CREATE INDEX IF NOT EXISTS carriers_verified ON erp_cache.carriers (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS customers_modified ON erp_cache.customers (instance, modified_at);
CREATE INDEX IF NOT EXISTS customers_synced ON erp_cache.customers (synced_at);
CREATE INDEX IF NOT EXISTS customers_verified ON erp_cache.customers (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS finished_goods_modified ON erp_cache.finished_goods (instance, modified_at);
CREATE INDEX IF NOT EXISTS finished_goods_synced ON erp_cache.finished_goods (synced_at);
CREATE INDEX IF NOT EXISTS finished_goods_verified ON erp_cache.finished_goods (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS locations_modified ON erp_cache.locations (instance, modified_at);
CREATE INDEX IF NOT EXISTS locations_synced ON erp_cache.locations (synced_at);
CREATE INDEX IF NOT EXISTS locations_verified ON erp_cache.locations (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS me_modified ON erp_cache.me (instance, modified_at);
CREATE INDEX IF NOT EXISTS me_synced ON erp_cache.me (synced_at);
CREATE INDEX IF NOT EXISTS me_verified ON erp_cache.me (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS price_tiers_modified ON erp_cache.price_tiers (instance, modified_at);
CREATE INDEX IF NOT EXISTS price_tiers_synced ON erp_cache.price_tiers (synced_at);
CREATE INDEX IF NOT EXISTS price_tiers_verified ON erp_cache.price_tiers (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS product_availability_modified ON erp_cache.product_availability (instance, modified_at);
CREATE INDEX IF NOT EXISTS product_availability_sku ON erp_cache.product_availability ((payload ->> 'SKU'));
CREATE INDEX IF NOT EXISTS product_availability_synced ON erp_cache.product_availability (synced_at);
CREATE INDEX IF NOT EXISTS product_availability_verified ON erp_cache.product_availability (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS products_modified ON erp_cache.products (instance, modified_at);
CREATE INDEX IF NOT EXISTS products_synced ON erp_cache.products (synced_at);
CREATE INDEX IF NOT EXISTS products_verified ON erp_cache.products (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS purchases_modified ON erp_cache.purchases (instance, modified_at);
CREATE INDEX IF NOT EXISTS purchases_synced ON erp_cache.purchases (synced_at);
CREATE INDEX IF NOT EXISTS purchases_verified ON erp_cache.purchases (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS sales_modified ON erp_cache.sales (instance, modified_at);
CREATE INDEX IF NOT EXISTS sales_open_orders ON erp_cache.sales (instance) WHERE deleted_at IS NULL AND (payload -> 'Order' ->> 'Status') = 'AUTHORISED' AND (payload ->> 'CombinedShippingStatus') IS DISTINCT FROM 'SHIPPED' AND (payload ->> 'Status') IS DISTINCT FROM 'VOIDED';
CREATE INDEX IF NOT EXISTS sales_order_date ON erp_cache.sales ((payload ->> 'SaleOrderDate'));
CREATE INDEX IF NOT EXISTS sales_payload_path_ops ON erp_cache.sales USING gin (payload jsonb_path_ops);
CREATE INDEX IF NOT EXISTS sales_synced ON erp_cache.sales (synced_at);
CREATE INDEX IF NOT EXISTS sales_verified ON erp_cache.sales (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS stock_adjustments_modified ON erp_cache.stock_adjustments (instance, modified_at);
CREATE INDEX IF NOT EXISTS stock_adjustments_synced ON erp_cache.stock_adjustments (synced_at);
CREATE INDEX IF NOT EXISTS stock_adjustments_verified ON erp_cache.stock_adjustments (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS stock_transfers_modified ON erp_cache.stock_transfers (instance, modified_at);
CREATE INDEX IF NOT EXISTS stock_transfers_synced ON erp_cache.stock_transfers (synced_at);
CREATE INDEX IF NOT EXISTS stock_transfers_verified ON erp_cache.stock_transfers (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS suppliers_modified ON erp_cache.suppliers (instance, modified_at);
CREATE INDEX IF NOT EXISTS suppliers_synced ON erp_cache.suppliers (synced_at);
CREATE INDEX IF NOT EXISTS suppliers_verified ON erp_cache.suppliers (instance, verified_at) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS zoho_units_by_day ON exports.zoho_units (org_id, spent_on);
CREATE INDEX IF NOT EXISTS dim_location_name ON warehouse.dim_location (instance_key, name);
CREATE INDEX IF NOT EXISTS fact_credit_note_line_revisit ON warehouse.fact_credit_note_line (instance_key, sale_id) WHERE (product_key = 0 OR customer_key = 0 OR location_key = 0 OR amount_reporting IS NULL);
CREATE INDEX IF NOT EXISTS fact_invoice_line_date ON warehouse.fact_invoice_line (invoice_date);
CREATE INDEX IF NOT EXISTS fact_invoice_line_revisit ON warehouse.fact_invoice_line (instance_key, sale_id) WHERE (product_key = 0 OR customer_key = 0 OR location_key = 0 OR amount_reporting IS NULL);
CREATE INDEX IF NOT EXISTS fact_purchase_line_revisit ON warehouse.fact_purchase_line (instance_key, purchase_id) WHERE (product_key = 0 OR location_key = 0 OR amount_reporting IS NULL);
CREATE INDEX IF NOT EXISTS fact_sale_line_order_date ON warehouse.fact_sale_line (order_date);
CREATE INDEX IF NOT EXISTS fact_sale_line_revisit ON warehouse.fact_sale_line (instance_key, sale_id) WHERE (product_key = 0 OR customer_key = 0 OR location_key = 0 OR amount_reporting IS NULL);
CREATE INDEX IF NOT EXISTS fx_rate_daily_changed ON warehouse.fx_rate_daily (changed_at);
CREATE INDEX IF NOT EXISTS edi_interchanges_awaiting ON automation.edi_interchanges (ack_due_at) WHERE state = 'awaiting_ack';
CREATE INDEX IF NOT EXISTS partner_orders_sale ON automation.partner_orders (instance, sale_id);
CREATE INDEX IF NOT EXISTS shipments_fulfilment ON automation.shipments (instance, sale_id, seq, id);
-- Earlier releases kept one row per sale in automation.routed_sales and each fulfilment's shipments inline:
-- carried over once, so an upgrade neither routes a sale twice nor forgets a shipment.
DO $$
BEGIN
  IF to_regclass('automation.routed_sales') IS NOT NULL THEN
    INSERT INTO automation.sales (instance, sale_id, order_number, sale_updated, state, reason, plan, admitted_by,
                                  rounds, created_at, updated_at)
    SELECT instance, sale_id, order_number, sale_updated,
           CASE state WHEN 'skipped' THEN 'held' ELSE 'planned' END, reason, plan, 'start_line',
           CASE state WHEN 'skipped' THEN 0 ELSE 1 END, created_at, updated_at
      FROM automation.routed_sales
    ON CONFLICT DO NOTHING;
  END IF;
  INSERT INTO automation.shipments (instance, sale_id, seq, shipment_key, partner, carrier, tracking_number, lines,
                                    state)
  SELECT f.instance, f.sale_id, f.seq, 'carried-over:' || (s->>'outbox_key'), f.partner,
         coalesce(s->>'carrier', ''), coalesce(s->>'tracking_number', ''), coalesce(s->'lines', '{}'),
         'shipped_in_cin7'
    FROM automation.fulfilments f,
         jsonb_array_elements(CASE jsonb_typeof(f.shipments) WHEN 'array' THEN f.shipments ELSE '[]' END) s
   WHERE s ? 'outbox_key'
  ON CONFLICT DO NOTHING;
END $$;

-- The dimensions' unknown members (key 0)
INSERT INTO warehouse.dim_instance (instance_key, instance, company) VALUES (0, '(unknown)', '(unknown)') ON CONFLICT DO NOTHING;
INSERT INTO warehouse.dim_date (date_key, date) VALUES (0, NULL) ON CONFLICT DO NOTHING;
INSERT INTO warehouse.conformed_product (conformed_product_key, sku) VALUES (0, '(unknown)') ON CONFLICT DO NOTHING;
INSERT INTO warehouse.dim_product (product_key, instance_key, product_id, conformed_product_key, sku, name) VALUES (0, 0, '(unknown)', 0, '(unknown)', '(unknown)') ON CONFLICT DO NOTHING;
INSERT INTO warehouse.dim_customer (customer_key, instance_key, customer_id, name) VALUES (0, 0, '(unknown)', '(unknown)') ON CONFLICT DO NOTHING;
INSERT INTO warehouse.dim_location (location_key, instance_key, location_id, name) VALUES (0, 0, '(unknown)', '(unknown)') ON CONFLICT DO NOTHING;
