WITH cutoff_times AS (
  SELECT DISTINCT
    lead_id,
    DATE_PART(EPOCH_MICROSECOND, cutoff) AS t
  FROM cutoffs
), lead_events AS (
  SELECT
    lead_id,
    activity_type,
    DATE_PART(EPOCH_MICROSECOND, occurred_at) AS occ,
    COALESCE(
      DATE_PART(EPOCH_MICROSECOND, recorded_at),
      DATE_PART(EPOCH_MICROSECOND, occurred_at)
    ) AS rec
  FROM activities
), seen AS (
  SELECT
    r.lead_id,
    r.t,
    ev.activity_type,
    r.t - ev.occ AS age,
    FLOOR(ev.occ / 86400000000.0) AS occ_day
  FROM cutoff_times AS r
  JOIN lead_events AS ev
    ON ev.lead_id = r.lead_id AND ev.occ < r.t AND ev.rec < r.t
), engagement AS (
  SELECT
    lead_id,
    t,
    COUNT(CASE WHEN activity_type IN ('email_open') AND age <= 604800000000 THEN 1 END) AS eng_email_open_7d,
    COUNT(CASE WHEN activity_type IN ('email_open') AND age <= 2592000000000 THEN 1 END) AS eng_email_open_30d,
    COUNT(CASE WHEN activity_type IN ('email_open') AND age <= 7776000000000 THEN 1 END) AS eng_email_open_90d,
    MIN(CASE WHEN activity_type IN ('email_open') THEN age END) AS eng_email_open_days_since,
    SUM(
      CASE
        WHEN activity_type IN ('email_open')
        THEN POWER(0.5, (
          CAST(age AS DOUBLE) / 86400000000.0
        ) / 14.0)
      END
    ) AS eng_email_open_decay,
    COUNT(CASE WHEN activity_type IN ('email_click') AND age <= 604800000000 THEN 1 END) AS eng_email_click_7d,
    COUNT(CASE WHEN activity_type IN ('email_click') AND age <= 2592000000000 THEN 1 END) AS eng_email_click_30d,
    COUNT(CASE WHEN activity_type IN ('email_click') AND age <= 7776000000000 THEN 1 END) AS eng_email_click_90d,
    MIN(CASE WHEN activity_type IN ('email_click') THEN age END) AS eng_email_click_days_since,
    SUM(
      CASE
        WHEN activity_type IN ('email_click')
        THEN POWER(0.5, (
          CAST(age AS DOUBLE) / 86400000000.0
        ) / 14.0)
      END
    ) AS eng_email_click_decay,
    COUNT(CASE WHEN activity_type IN ('web_visit') AND age <= 604800000000 THEN 1 END) AS eng_web_visit_7d,
    COUNT(CASE WHEN activity_type IN ('web_visit') AND age <= 2592000000000 THEN 1 END) AS eng_web_visit_30d,
    COUNT(CASE WHEN activity_type IN ('web_visit') AND age <= 7776000000000 THEN 1 END) AS eng_web_visit_90d,
    MIN(CASE WHEN activity_type IN ('web_visit') THEN age END) AS eng_web_visit_days_since,
    SUM(
      CASE
        WHEN activity_type IN ('web_visit')
        THEN POWER(0.5, (
          CAST(age AS DOUBLE) / 86400000000.0
        ) / 14.0)
      END
    ) AS eng_web_visit_decay,
    COUNT(
      CASE
        WHEN activity_type IN ('pricing_page_visit') AND age <= 604800000000
        THEN 1
      END
    ) AS eng_pricing_page_7d,
    COUNT(
      CASE
        WHEN activity_type IN ('pricing_page_visit') AND age <= 2592000000000
        THEN 1
      END
    ) AS eng_pricing_page_30d,
    COUNT(
      CASE
        WHEN activity_type IN ('pricing_page_visit') AND age <= 7776000000000
        THEN 1
      END
    ) AS eng_pricing_page_90d,
    MIN(CASE WHEN activity_type IN ('pricing_page_visit') THEN age END) AS eng_pricing_page_days_since,
    SUM(
      CASE
        WHEN activity_type IN ('pricing_page_visit')
        THEN POWER(0.5, (
          CAST(age AS DOUBLE) / 86400000000.0
        ) / 10.0)
      END
    ) AS eng_pricing_page_decay,
    COUNT(
      CASE
        WHEN activity_type IN ('whitepaper_download') AND age <= 604800000000
        THEN 1
      END
    ) AS eng_whitepaper_7d,
    COUNT(
      CASE
        WHEN activity_type IN ('whitepaper_download') AND age <= 2592000000000
        THEN 1
      END
    ) AS eng_whitepaper_30d,
    COUNT(
      CASE
        WHEN activity_type IN ('whitepaper_download') AND age <= 7776000000000
        THEN 1
      END
    ) AS eng_whitepaper_90d,
    MIN(CASE WHEN activity_type IN ('whitepaper_download') THEN age END) AS eng_whitepaper_days_since,
    SUM(
      CASE
        WHEN activity_type IN ('whitepaper_download')
        THEN POWER(0.5, (
          CAST(age AS DOUBLE) / 86400000000.0
        ) / 30.0)
      END
    ) AS eng_whitepaper_decay,
    COUNT(
      CASE WHEN activity_type IN ('webinar_attended') AND age <= 604800000000 THEN 1 END
    ) AS eng_webinar_7d,
    COUNT(
      CASE WHEN activity_type IN ('webinar_attended') AND age <= 2592000000000 THEN 1 END
    ) AS eng_webinar_30d,
    COUNT(
      CASE WHEN activity_type IN ('webinar_attended') AND age <= 7776000000000 THEN 1 END
    ) AS eng_webinar_90d,
    MIN(CASE WHEN activity_type IN ('webinar_attended') THEN age END) AS eng_webinar_days_since,
    SUM(
      CASE
        WHEN activity_type IN ('webinar_attended')
        THEN POWER(0.5, (
          CAST(age AS DOUBLE) / 86400000000.0
        ) / 30.0)
      END
    ) AS eng_webinar_decay,
    COUNT(
      CASE WHEN activity_type IN ('tradeshow_visit') AND age <= 604800000000 THEN 1 END
    ) AS eng_tradeshow_7d,
    COUNT(
      CASE WHEN activity_type IN ('tradeshow_visit') AND age <= 2592000000000 THEN 1 END
    ) AS eng_tradeshow_30d,
    COUNT(
      CASE WHEN activity_type IN ('tradeshow_visit') AND age <= 7776000000000 THEN 1 END
    ) AS eng_tradeshow_90d,
    MIN(CASE WHEN activity_type IN ('tradeshow_visit') THEN age END) AS eng_tradeshow_days_since,
    SUM(
      CASE
        WHEN activity_type IN ('tradeshow_visit')
        THEN POWER(0.5, (
          CAST(age AS DOUBLE) / 86400000000.0
        ) / 45.0)
      END
    ) AS eng_tradeshow_decay,
    COUNT(
      CASE WHEN activity_type IN ('survey_completed') AND age <= 604800000000 THEN 1 END
    ) AS eng_survey_7d,
    COUNT(
      CASE WHEN activity_type IN ('survey_completed') AND age <= 2592000000000 THEN 1 END
    ) AS eng_survey_30d,
    COUNT(
      CASE WHEN activity_type IN ('survey_completed') AND age <= 7776000000000 THEN 1 END
    ) AS eng_survey_90d,
    MIN(CASE WHEN activity_type IN ('survey_completed') THEN age END) AS eng_survey_days_since,
    SUM(
      CASE
        WHEN activity_type IN ('survey_completed')
        THEN POWER(0.5, (
          CAST(age AS DOUBLE) / 86400000000.0
        ) / 21.0)
      END
    ) AS eng_survey_decay,
    COUNT(CASE WHEN activity_type IN ('demo_request') AND age <= 604800000000 THEN 1 END) AS eng_demo_request_7d,
    COUNT(CASE WHEN activity_type IN ('demo_request') AND age <= 2592000000000 THEN 1 END) AS eng_demo_request_30d,
    COUNT(CASE WHEN activity_type IN ('demo_request') AND age <= 7776000000000 THEN 1 END) AS eng_demo_request_90d,
    MIN(CASE WHEN activity_type IN ('demo_request') THEN age END) AS eng_demo_request_days_since,
    SUM(
      CASE
        WHEN activity_type IN ('demo_request')
        THEN POWER(0.5, (
          CAST(age AS DOUBLE) / 86400000000.0
        ) / 21.0)
      END
    ) AS eng_demo_request_decay,
    COUNT(CASE WHEN activity_type IN ('unsubscribe') AND age <= 604800000000 THEN 1 END) AS eng_unsubscribe_7d,
    COUNT(CASE WHEN activity_type IN ('unsubscribe') AND age <= 2592000000000 THEN 1 END) AS eng_unsubscribe_30d,
    COUNT(CASE WHEN activity_type IN ('unsubscribe') AND age <= 7776000000000 THEN 1 END) AS eng_unsubscribe_90d,
    MIN(CASE WHEN activity_type IN ('unsubscribe') THEN age END) AS eng_unsubscribe_days_since,
    SUM(
      CASE
        WHEN activity_type IN ('unsubscribe')
        THEN POWER(0.5, (
          CAST(age AS DOUBLE) / 86400000000.0
        ) / 180.0)
      END
    ) AS eng_unsubscribe_decay,
    COUNT(DISTINCT CASE WHEN age <= 7776000000000 THEN occ_day END) AS eng_active_days_90d,
    MIN(age) AS eng_days_since_any
  FROM seen
  GROUP BY
    lead_id,
    t
)
SELECT
  c.lead_id AS lead_id,
  c.cutoff AS cutoff,
  CAST(CASE
    WHEN NULLIF(TRIM(CAST(a."industry" AS VARCHAR)), '') IS NULL
    THEN NULL
    WHEN LOWER(NULLIF(TRIM(CAST(a."industry" AS VARCHAR)), '')) IN ('financial_services', 'healthcare', 'manufacturing', 'software')
    THEN 1.0
    ELSE 0.0
  END AS DOUBLE) AS fit_industry,
  NULLIF(TRIM(CAST(a."industry" AS VARCHAR)), '') AS fit_industry_value,
  CAST(CASE
    WHEN NOT (
      CAST(a."employees" AS DOUBLE) BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308
    )
    OR CAST(a."employees" AS DOUBLE) IS NULL
    THEN NULL
    WHEN TRUE
    AND CAST(a."employees" AS DOUBLE) >= 200.0
    AND CAST(a."employees" AS DOUBLE) <= 5000.0
    THEN 1.0
    ELSE 0.0
  END AS DOUBLE) AS fit_employees,
  CASE
    WHEN CAST(a."employees" AS DOUBLE) BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308
    THEN CAST(a."employees" AS DOUBLE)
  END AS fit_employees_value,
  CAST(CASE
    WHEN NOT (
      CAST(a."annual_revenue" AS DOUBLE) BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308
    )
    OR CAST(a."annual_revenue" AS DOUBLE) IS NULL
    THEN NULL
    WHEN TRUE
    AND CAST(a."annual_revenue" AS DOUBLE) >= 20000000.0
    AND CAST(a."annual_revenue" AS DOUBLE) <= 1000000000.0
    THEN 1.0
    ELSE 0.0
  END AS DOUBLE) AS fit_revenue,
  CASE
    WHEN CAST(a."annual_revenue" AS DOUBLE) BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308
    THEN CAST(a."annual_revenue" AS DOUBLE)
  END AS fit_revenue_value,
  CAST(CASE
    WHEN NULLIF(TRIM(CAST(a."country" AS VARCHAR)), '') IS NULL
    THEN NULL
    WHEN LOWER(NULLIF(TRIM(CAST(a."country" AS VARCHAR)), '')) IN ('au', 'ca', 'de', 'fr', 'gb', 'nl', 'se', 'us')
    THEN 1.0
    ELSE 0.0
  END AS DOUBLE) AS fit_region,
  NULLIF(TRIM(CAST(a."country" AS VARCHAR)), '') AS fit_region_value,
  CAST(CASE
    WHEN NULLIF(TRIM(CAST(l."seniority" AS VARCHAR)), '') IS NULL
    THEN NULL
    WHEN LOWER(NULLIF(TRIM(CAST(l."seniority" AS VARCHAR)), '')) IN ('c_level', 'director', 'vp')
    THEN 1.0
    ELSE 0.0
  END AS DOUBLE) AS fit_seniority,
  NULLIF(TRIM(CAST(l."seniority" AS VARCHAR)), '') AS fit_seniority_value,
  CAST(CASE
    WHEN NULLIF(TRIM(CAST(l."department" AS VARCHAR)), '') IS NULL
    THEN NULL
    WHEN LOWER(NULLIF(TRIM(CAST(l."department" AS VARCHAR)), '')) IN ('marketing', 'revenue_operations', 'sales')
    THEN 1.0
    ELSE 0.0
  END AS DOUBLE) AS fit_department,
  NULLIF(TRIM(CAST(l."department" AS VARCHAR)), '') AS fit_department_value,
  CAST(CASE
    WHEN NULLIF(TRIM(CAST(l."email_domain" AS VARCHAR)), '') IS NULL
    THEN NULL
    WHEN LOWER(NULLIF(TRIM(CAST(l."email_domain" AS VARCHAR)), '')) IN (
      'aol.com',
      'gmail.com',
      'gmx.de',
      'hotmail.com',
      'icloud.com',
      'mail.ru',
      'outlook.com',
      'qq.com',
      'web.de',
      'yahoo.com'
    )
    THEN 1.0
    ELSE 0.0
  END AS DOUBLE) AS fit_free_email,
  NULLIF(TRIM(CAST(l."lead_source" AS VARCHAR)), '') AS fit_lead_source_value,
  CAST(COALESCE(e.eng_email_open_7d, 0) AS DOUBLE) AS eng_email_open_7d,
  CAST(COALESCE(e.eng_email_open_30d, 0) AS DOUBLE) AS eng_email_open_30d,
  CAST(COALESCE(e.eng_email_open_90d, 0) AS DOUBLE) AS eng_email_open_90d,
  CAST(e.eng_email_open_days_since AS DOUBLE) / 86400000000.0 AS eng_email_open_days_since,
  COALESCE(e.eng_email_open_decay, 0.0) AS eng_email_open_decay,
  CAST(COALESCE(e.eng_email_click_7d, 0) AS DOUBLE) AS eng_email_click_7d,
  CAST(COALESCE(e.eng_email_click_30d, 0) AS DOUBLE) AS eng_email_click_30d,
  CAST(COALESCE(e.eng_email_click_90d, 0) AS DOUBLE) AS eng_email_click_90d,
  CAST(e.eng_email_click_days_since AS DOUBLE) / 86400000000.0 AS eng_email_click_days_since,
  COALESCE(e.eng_email_click_decay, 0.0) AS eng_email_click_decay,
  CAST(COALESCE(e.eng_web_visit_7d, 0) AS DOUBLE) AS eng_web_visit_7d,
  CAST(COALESCE(e.eng_web_visit_30d, 0) AS DOUBLE) AS eng_web_visit_30d,
  CAST(COALESCE(e.eng_web_visit_90d, 0) AS DOUBLE) AS eng_web_visit_90d,
  CAST(e.eng_web_visit_days_since AS DOUBLE) / 86400000000.0 AS eng_web_visit_days_since,
  COALESCE(e.eng_web_visit_decay, 0.0) AS eng_web_visit_decay,
  CAST(COALESCE(e.eng_pricing_page_7d, 0) AS DOUBLE) AS eng_pricing_page_7d,
  CAST(COALESCE(e.eng_pricing_page_30d, 0) AS DOUBLE) AS eng_pricing_page_30d,
  CAST(COALESCE(e.eng_pricing_page_90d, 0) AS DOUBLE) AS eng_pricing_page_90d,
  CAST(e.eng_pricing_page_days_since AS DOUBLE) / 86400000000.0 AS eng_pricing_page_days_since,
  COALESCE(e.eng_pricing_page_decay, 0.0) AS eng_pricing_page_decay,
  CAST(COALESCE(e.eng_whitepaper_7d, 0) AS DOUBLE) AS eng_whitepaper_7d,
  CAST(COALESCE(e.eng_whitepaper_30d, 0) AS DOUBLE) AS eng_whitepaper_30d,
  CAST(COALESCE(e.eng_whitepaper_90d, 0) AS DOUBLE) AS eng_whitepaper_90d,
  CAST(e.eng_whitepaper_days_since AS DOUBLE) / 86400000000.0 AS eng_whitepaper_days_since,
  COALESCE(e.eng_whitepaper_decay, 0.0) AS eng_whitepaper_decay,
  CAST(COALESCE(e.eng_webinar_7d, 0) AS DOUBLE) AS eng_webinar_7d,
  CAST(COALESCE(e.eng_webinar_30d, 0) AS DOUBLE) AS eng_webinar_30d,
  CAST(COALESCE(e.eng_webinar_90d, 0) AS DOUBLE) AS eng_webinar_90d,
  CAST(e.eng_webinar_days_since AS DOUBLE) / 86400000000.0 AS eng_webinar_days_since,
  COALESCE(e.eng_webinar_decay, 0.0) AS eng_webinar_decay,
  CAST(COALESCE(e.eng_tradeshow_7d, 0) AS DOUBLE) AS eng_tradeshow_7d,
  CAST(COALESCE(e.eng_tradeshow_30d, 0) AS DOUBLE) AS eng_tradeshow_30d,
  CAST(COALESCE(e.eng_tradeshow_90d, 0) AS DOUBLE) AS eng_tradeshow_90d,
  CAST(e.eng_tradeshow_days_since AS DOUBLE) / 86400000000.0 AS eng_tradeshow_days_since,
  COALESCE(e.eng_tradeshow_decay, 0.0) AS eng_tradeshow_decay,
  CAST(COALESCE(e.eng_survey_7d, 0) AS DOUBLE) AS eng_survey_7d,
  CAST(COALESCE(e.eng_survey_30d, 0) AS DOUBLE) AS eng_survey_30d,
  CAST(COALESCE(e.eng_survey_90d, 0) AS DOUBLE) AS eng_survey_90d,
  CAST(e.eng_survey_days_since AS DOUBLE) / 86400000000.0 AS eng_survey_days_since,
  COALESCE(e.eng_survey_decay, 0.0) AS eng_survey_decay,
  CAST(COALESCE(e.eng_demo_request_7d, 0) AS DOUBLE) AS eng_demo_request_7d,
  CAST(COALESCE(e.eng_demo_request_30d, 0) AS DOUBLE) AS eng_demo_request_30d,
  CAST(COALESCE(e.eng_demo_request_90d, 0) AS DOUBLE) AS eng_demo_request_90d,
  CAST(e.eng_demo_request_days_since AS DOUBLE) / 86400000000.0 AS eng_demo_request_days_since,
  COALESCE(e.eng_demo_request_decay, 0.0) AS eng_demo_request_decay,
  CAST(COALESCE(e.eng_unsubscribe_7d, 0) AS DOUBLE) AS eng_unsubscribe_7d,
  CAST(COALESCE(e.eng_unsubscribe_30d, 0) AS DOUBLE) AS eng_unsubscribe_30d,
  CAST(COALESCE(e.eng_unsubscribe_90d, 0) AS DOUBLE) AS eng_unsubscribe_90d,
  CAST(e.eng_unsubscribe_days_since AS DOUBLE) / 86400000000.0 AS eng_unsubscribe_days_since,
  COALESCE(e.eng_unsubscribe_decay, 0.0) AS eng_unsubscribe_decay,
  CAST(COALESCE(e.eng_active_days_90d, 0) AS DOUBLE) AS eng_active_days_90d,
  CAST(e.eng_days_since_any AS DOUBLE) / 86400000000.0 AS eng_days_since_any,
  CAST(DATE_PART(EPOCH_MICROSECOND, c.cutoff) - DATE_PART(EPOCH_MICROSECOND, l.created_at) AS DOUBLE) / 86400000000.0 AS lead_age_days
FROM cutoffs AS c
JOIN leads AS l
  ON l.lead_id = c.lead_id
LEFT JOIN accounts AS a
  ON a.account_id = l.account_id
LEFT JOIN engagement AS e
  ON e.lead_id = c.lead_id AND e.t = DATE_PART(EPOCH_MICROSECOND, c.cutoff)
